package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imqtt/imqtt/client"
)

// extraFlags adds flags to a command's FlagSet that a wrapper of the
// command handles (send's --file, taken by cmdSendFile), so that its help
// and completion list them.
var extraFlags = map[string]func(*flag.FlagSet){
	"send": func(fs *flag.FlagSet) {
		fs.String("file", "", "upload this file first and send it as an image, audio, video or file (not with --media)")
	},
}

// withMedia adds the media commands to the list: upload and download after
// send, and send learns --file.
func withMedia(cmds []command) []command {
	var out []command
	for _, cmd := range cmds {
		if cmd.name == "send" {
			cmd.args = "(--to PEER [--ttl SECONDS] | --group G) [--file FILE] TEXT..."
			cmd.summary += "; --file uploads FILE first and sends it as an image, audio, video or file"
			cmd.run = cmdSendFile
			out = append(out, cmd,
				command{"upload", "FILE [--type MIME] [--private]", "upload a file (- for stdin); print its media ID and type", nil, cmdUpload},
				command{"download", "ID [-o FILE] [--thumb]", "download media (to stdout, or to FILE)", nil, cmdDownload})
			continue
		}
		out = append(out, cmd)
	}
	return out
}

// cmdUpload: imqtt upload FILE [--type MIME] [--private]
func cmdUpload(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("upload")
	typ := fs.String("type", "", "the file's MIME type (default: the server sniffs it; a wrong one is refused)")
	private := fs.Bool("private", false, "a video served only as encrypted HLS (needs ffmpeg on the server)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	info, err := c.upload(ctx, h, pos[0], client.UploadOptions{ContentType: *typ, Private: *private})
	if err != nil {
		return err
	}
	return c.printJSON(info)
}

// upload uploads the file at path (- for stdin), with a progress line on
// a terminal (transfer.go).
func (c *cli) upload(ctx context.Context, h *client.HTTP, path string, o client.UploadOptions) (client.MediaInfo, error) {
	label := "upload"
	if path != "-" {
		label += " " + cmp.Or(o.Name, filepath.Base(path))
	}
	if m := c.meter(label, -1); m != nil {
		h.Client = meteredClient(m)
		defer m.finish()
	}
	if path == "-" {
		return h.Upload(ctx, c.stdin(), -1, o)
	}
	return h.UploadFile(ctx, path, o)
}

// stdin is the CLI's standard input (empty if it has none).
func (c *cli) stdin() io.Reader {
	if c.env.stdin == nil {
		return strings.NewReader("")
	}
	return c.env.stdin
}

// cmdDownload: imqtt download ID [-o FILE] [--thumb]
func cmdDownload(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("download")
	out := fs.String("o", "", "write to this file (default: stdout); printed: the media's ID, size, type and sha256")
	thumb := fs.Bool("thumb", false, "the thumbnail instead of the media")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	get := h.Download
	if *thumb {
		get = h.DownloadThumb
	}
	if *out == "" || *out == "-" {
		_, err := get(ctx, pos[0], c.stdout)
		return err
	}
	// With -o, a terminal on stdout has a person waiting: show progress.
	m := c.meter("download "+pos[0], -1)
	if m != nil {
		h.Client = meteredClient(m)
	}
	// Written beside the target and renamed once complete and checked, so
	// FILE is never a partial download.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".part-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	info, err := get(ctx, pos[0], tmp)
	m.finish()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	return c.printJSON(info)
}

// cmdSendFile is send with --file FILE: it uploads FILE, then sends a
// message of the file's kind (image, audio, video or file; --type wins)
// that refers to it, with its name, size, type and dimensions in meta
// unless --meta is given.
func cmdSendFile(ctx context.Context, c *cli, args []string) error {
	file, rest, err := takeFileFlag(args)
	if err != nil || file == "" {
		if err != nil {
			return err
		}
		if hasFlag(args, "file") {
			return usagef("--file needs a file name")
		}
		return cmdSend(ctx, c, args)
	}
	if hasFlag(rest, "media") {
		return usagef("give --file or --media, not both")
	}
	// The global flags (--server, --home) may follow the command: parse
	// just those to reach the server before send parses everything.
	fs := flag.NewFlagSet("imqtt send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.post.register(fs)
	if _, err := c.parse(fs, globalArgs(fs, rest), 0, -1); err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	info, err := c.upload(ctx, h, file, client.UploadOptions{})
	if err != nil {
		return err
	}
	pre := []string{"--media", info.ID, "--type", info.Kind()}
	if !hasFlag(rest, "meta") {
		meta, _ := json.Marshal(map[string]any{"name": info.Name, "size": info.Size, "mime": info.Type, "w": info.Width, "h": info.Height})
		pre = append(pre, "--meta", string(meta))
	}
	return cmdSend(ctx, c, append(pre, rest...))
}

// takeFileFlag removes --file FILE (or -file, or --file=FILE) from args,
// before any "--", and returns FILE and the rest.
func takeFileFlag(args []string) (string, []string, error) {
	var file string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "file" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", nil, usagef("--file needs a file name")
			}
			i++
			value = args[i]
		}
		file = value
	}
	return file, rest, nil
}

// hasFlag reports whether args (before any "--") set the flag name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// globalArgs picks out of args the flags fs knows, with their values.
func globalArgs(fs *flag.FlagSet, args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		out = append(out, a)
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}
