package filter

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Links are found in normalised text (NFKC has already made "ＥＸＡＭＰＬＥ．ＣＯＭ"
// "example.com" and U+FF61 the ideographic full stop U+3002), the way a
// reader sees them: "scheme://anything", or a dotted host whose last label
// is an ICANN top-level domain (publicsuffix), with or without "www.", a
// port or a path. "file.txt" and "v1.2" are not links: "txt" and "2" are
// not domains. A name ending in a real country code ("notes.md", "run.sh")
// is one, as a chat app would link it.

// ideographicStop is U+3002, which readers take for a dot in a host name.
const ideographicStop = "\u3002"

// linkFunc is told each link in t: its normalised bytes [start, end) and
// its host, lower case, in ASCII (IDN as punycode), "" when it has none
// (a scheme link without a host, "mailto:" is not one). It returns whether
// to go on.
type linkFunc func(start, end int, host string) bool

// findLinks calls fn for each link in t, left to right, at most once for
// each byte of t (links do not overlap).
func findLinks(t []byte, fn linkFunc) {
	pos := 0
	for pos < len(t) {
		start, end, host, ok := nextLink(t, pos)
		if !ok {
			return
		}
		if !fn(start, end, host) {
			return
		}
		pos = end
	}
}

// nextLink finds the first link in t that starts at or after from.
func nextLink(t []byte, from int) (start, end int, host string, ok bool) {
	for i := from; i < len(t); {
		d, dl := nextDot(t, i)
		if d < 0 {
			return 0, 0, "", false
		}
		// A scheme: "://" after letters; its link needs no public suffix.
		if d >= 1 && dl == 1 && t[d] == ':' {
			if s, e, h, ok := schemeLink(t, from, d); ok {
				return s, e, h, true
			}
			i = d + 1
			continue
		}
		hs := labelStart(t, from, d)
		if hs == d {
			i = d + dl
			continue
		}
		he, tld := hostEnd(t, hs)
		if he <= d+dl || !hasICANNTLD(t[tld:he]) {
			i = d + dl
			continue
		}
		return hs, pathEnd(t, he), asciiHost(string(t[hs:he])), true
	}
	return 0, 0, "", false
}

// nextDot returns the next '.', U+3002 or ':' in t from i and its length.
func nextDot(t []byte, i int) (int, int) {
	for ; i < len(t); i++ {
		switch t[i] {
		case '.', ':':
			return i, 1
		case ideographicStop[0]:
			if bytes.HasPrefix(t[i:], []byte(ideographicStop)) {
				return i, len(ideographicStop)
			}
		}
	}
	return -1, 0
}

// schemeLink reads "scheme://..." whose ':' is at c: the link runs from
// the scheme to the path's end.
func schemeLink(t []byte, from, c int) (start, end int, host string, ok bool) {
	if !bytes.HasPrefix(t[c:], []byte("://")) {
		return 0, 0, "", false
	}
	s := c
	for s > from && isSchemeByte(t[s-1]) {
		s--
	}
	for s < c && !('a' <= t[s] && t[s] <= 'z') { // a scheme starts with a letter
		s++
	}
	if s == c || c+3 >= len(t) || isLinkEnd(t, c+3) {
		return 0, 0, "", false
	}
	for end = c + 3; end < len(t) && !isLinkEnd(t, end); {
		_, size := utf8.DecodeRune(t[end:])
		end += size
	}
	h := t[c+3 : end]
	if at := bytes.IndexByte(h, '@'); at >= 0 { // user info
		h = h[at+1:]
	}
	if i := bytes.IndexAny(h, "/?#"); i >= 0 {
		h = h[:i]
	}
	if h2, _, found := bytes.Cut(h, []byte(":")); found && !bytes.HasPrefix(h, []byte("[")) {
		h = h2 // a port
	}
	return s, end, asciiHost(string(h)), true
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// labelClass sorts a host's characters: 0 not in a host; 1 ASCII letters,
// digits and '-', and the letters of scripts written with spaces; 2 the
// CJK scripts, written without spaces, so "访问example.com" holds the host
// example.com and "例え.jp" is one.
func labelClass(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' {
			return 1
		}
		return 0
	case r == utf8.RuneError:
		return 0
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
		return 2
	case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
		return 1
	}
	return 0
}

// labelStart walks back from the dot at d over one label's characters of
// one class, not before from.
func labelStart(t []byte, from, d int) int {
	s, class := d, 0
	for s > from {
		r, size := utf8.DecodeLastRune(t[from:s])
		c := labelClass(r)
		if c == 0 || class != 0 && c != class {
			break
		}
		class = c
		s -= size
	}
	return s
}

// labelEnd walks forward from i over one label's characters of one class.
func labelEnd(t []byte, i int) int {
	class := 0
	for i < len(t) {
		r, size := utf8.DecodeRune(t[i:])
		c := labelClass(r)
		if c == 0 || class != 0 && c != class {
			break
		}
		class = c
		i += size
	}
	return i
}

// hostEnd reads the host that starts at hs: labels joined by dots. It
// returns its end and where its last label starts.
func hostEnd(t []byte, hs int) (end, last int) {
	i := labelEnd(t, hs)
	last = hs
	for i < len(t) {
		dl := 0
		switch {
		case t[i] == '.':
			dl = 1
		case bytes.HasPrefix(t[i:], []byte(ideographicStop)):
			dl = len(ideographicStop)
		default:
			return i, last
		}
		e := labelEnd(t, i+dl)
		if e == i+dl {
			return i, last // a dot ending a sentence
		}
		last, i = i+dl, e
	}
	return i, last
}

// pathEnd extends a link past its host over a port, path, query or
// fragment: to the next space, quote or angle bracket, or CJK text.
func pathEnd(t []byte, i int) int {
	if i >= len(t) || (t[i] != '/' && t[i] != ':' && t[i] != '?' && t[i] != '#') {
		return i
	}
	for i < len(t) && !isLinkEnd(t, i) {
		_, size := utf8.DecodeRune(t[i:])
		i += size
	}
	return i
}

func isLinkEnd(t []byte, i int) bool {
	r, _ := utf8.DecodeRune(t[i:])
	switch {
	case r == '<' || r == '>' || r == '"' || r == '`':
		return true
	case r >= 0x2e80: // CJK text and punctuation
		return true
	}
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// hasICANNTLD reports whether host's last label is a top-level domain in
// the ICANN section of the public suffix list.
func hasICANNTLD(label []byte) bool {
	if len(label) < 2 {
		return false // no top-level domain has one letter
	}
	tld := asciiHost(string(label))
	ps, icann := publicsuffix.PublicSuffix(tld)
	return icann && ps == tld
}

// asciiHost is host (normalised, dots as '.') in ASCII: an IDN as
// punycode, as the public suffix list and allowed domains are kept.
func asciiHost(host string) string {
	host = strings.TrimSuffix(strings.ReplaceAll(host, ideographicStop, "."), ".")
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			if a, err := idna.ToASCII(host); err == nil {
				return a
			}
			return host
		}
	}
	return host
}

// allowedHost reports whether host is one of domains or a subdomain of one.
func allowedHost(domains map[string]struct{}, host string) bool {
	for h := host; h != ""; {
		if _, ok := domains[h]; ok {
			return true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return false
		}
		h = h[i+1:]
	}
	return false
}
