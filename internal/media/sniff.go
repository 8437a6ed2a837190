package media

import (
	"bytes"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// sniffLen is how much of the head of an upload decides its type.
const sniffLen = 512

// Class is a type class: each has its own size limit.
type Class string

// Classes.
const (
	ClassImage Class = "image"
	ClassAudio Class = "audio"
	ClassVideo Class = "video"
	ClassFile  Class = "file" // everything else
)

// ClassOf returns the class of a MIME type.
func ClassOf(typ string) Class {
	base, _, _ := strings.Cut(typ, ";")
	switch major, _, _ := strings.Cut(strings.TrimSpace(base), "/"); major {
	case "image":
		return ClassImage
	case "audio":
		return ClassAudio
	case "video":
		return ClassVideo
	}
	return ClassFile
}

// Sniff returns the MIME type of content that begins with head: the
// signatures of net/http's DetectContentType, and before them a few common
// audio and video containers it does not know (AMR and Opus voice notes,
// M4A, QuickTime, 3GP, Matroska, FLAC, AAC, MP3 without an ID3 tag, HEIC).
func Sniff(head []byte) string {
	if len(head) > sniffLen {
		head = head[:sniffLen]
	}
	if t := sniffMedia(head); t != "" {
		return t
	}
	t := http.DetectContentType(head)
	if n := normalize(t); n != "" && !strings.Contains(t, ";") {
		return n
	}
	return t
}

func sniffMedia(h []byte) string {
	switch {
	case len(h) >= 12 && string(h[4:8]) == "ftyp":
		return ftypType(string(h[8:12]))
	case bytes.HasPrefix(h, []byte("#!AMR-WB\n")):
		return "audio/amr-wb"
	case bytes.HasPrefix(h, []byte("#!AMR\n")):
		return "audio/amr"
	case bytes.HasPrefix(h, []byte("fLaC")):
		return "audio/flac"
	case bytes.HasPrefix(h, []byte("OggS")):
		// The first page holds the codec's identification header at 28.
		switch body := h[min(28, len(h)):]; {
		case bytes.HasPrefix(body, []byte("OpusHead")), bytes.HasPrefix(body, []byte("\x01vorbis")),
			bytes.HasPrefix(body, []byte("Speex")), bytes.HasPrefix(body, []byte("\x7fFLAC")):
			return "audio/ogg"
		case bytes.HasPrefix(body, []byte("\x80theora")):
			return "video/ogg"
		}
		return "application/ogg"
	case bytes.HasPrefix(h, []byte("\x1a\x45\xdf\xa3")):
		if bytes.Contains(h, []byte("matroska")) {
			return "video/x-matroska"
		}
		return "video/webm"
	case len(h) >= 4 && h[0] == 0xff && h[1]&0xf6 == 0xf0:
		return "audio/aac" // ADTS: sync word, layer 0
	case len(h) >= 4 && h[0] == 0xff && h[1]&0xe0 == 0xe0 && (h[1]>>1)&3 == 1 && h[2]&0xf0 != 0xf0:
		return "audio/mpeg" // an MPEG audio layer III frame; bitrate index not 15
	}
	return ""
}

// ftypType maps the major brand of an ISO base media file.
func ftypType(brand string) string {
	switch brand {
	case "M4A ", "M4B ", "M4P ", "F4A ":
		return "audio/mp4"
	case "qt  ":
		return "video/quicktime"
	case "heic", "heix", "heim", "heis", "hevc", "hevx":
		return "image/heic"
	case "mif1", "msf1":
		return "image/heif"
	case "avif", "avis":
		return "image/avif"
	case "3g2a", "3g2b", "3g2c":
		return "video/3gpp2"
	}
	if strings.HasPrefix(brand, "3gp") || strings.HasPrefix(brand, "3gg") || strings.HasPrefix(brand, "3gs") {
		return "video/3gpp"
	}
	return "video/mp4"
}

// aliases maps the other names clients use to one.
var aliases = map[string]string{
	"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
	"image/vnd.microsoft.icon": "image/x-icon",
	"image/x-ms-bmp":           "image/bmp",
	"audio/wave":               "audio/wav", "audio/x-wav": "audio/wav", "audio/vnd.wave": "audio/wav",
	"audio/mp3": "audio/mpeg", "audio/x-mp3": "audio/mpeg", "audio/mpeg3": "audio/mpeg", "audio/x-mpeg": "audio/mpeg",
	"audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4", "audio/aacp": "audio/aac", "audio/x-aac": "audio/aac",
	"audio/x-flac": "audio/flac", "audio/x-aiff": "audio/aiff", "audio/opus": "audio/ogg",
	"video/x-msvideo": "video/avi", "video/msvideo": "video/avi", "video/x-m4v": "video/mp4",
	"video/x-mkv": "video/x-matroska", "video/mkv": "video/x-matroska",
}

// containers hold several classes of content: a declared type within the
// same container as the sniffed one is believed (an audio-only MP4).
var containers = [][]string{
	{"video/mp4", "audio/mp4"},
	{"video/webm", "audio/webm", "video/x-matroska", "audio/x-matroska"},
	{"application/ogg", "audio/ogg", "video/ogg"},
	{"video/3gpp", "audio/3gpp"},
	{"video/3gpp2", "audio/3gpp2"},
	{"image/heic", "image/heif"},
}

// normalize returns the lower-case base type of t under its usual name, or
// "" if t does not parse.
func normalize(t string) string {
	base, _, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(base, "/") {
		return ""
	}
	if a, ok := aliases[base]; ok {
		return a
	}
	return base
}

// Resolve checks the type a client declared against the sniffed one and
// returns the type to store. No declaration, or a generic one, takes the
// sniffed type. A declared type must agree with the content: the same type,
// or a finer one within the same container (audio/mp4 for an MP4 file).
// A declaration of media (image, audio, video) on other content, or of
// other content on media, is ErrTypeMismatch. Between two non-media types
// (a .docx declared, a ZIP sniffed) the sniffed one is kept, since nothing
// the client says is taken on trust.
func Resolve(declared, sniffed string) (string, error) {
	d := normalize(declared)
	if d == "" || d == "application/octet-stream" || d == "multipart/form-data" {
		return sniffed, nil
	}
	s := normalize(sniffed)
	if d == s {
		return sniffed, nil
	}
	for _, c := range containers {
		if slices.Contains(c, d) && slices.Contains(c, s) {
			return d, nil
		}
	}
	if ClassOf(d) != ClassFile || ClassOf(s) != ClassFile {
		return "", ErrTypeMismatch
	}
	return sniffed, nil
}
