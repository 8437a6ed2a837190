package pebble

import "github.com/cockroachdb/pebble/v2/vfs"

// WithFS returns o with the file system replaced, for crash tests.
func WithFS(o Options, fs vfs.FS) Options {
	o.fs = fs
	return o
}
