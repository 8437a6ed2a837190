// Package jssdk embeds the JavaScript SDK's modules (src/) so that imqttd
// can serve them to browsers without a bundler: the web chat
// (internal/webchat) loads them from /chat/sdk/. go:embed cannot reach
// outside a package's directory, hence this package beside the files.
package jssdk

import (
	"embed"
	"io/fs"
)

//go:embed src/*.js
var files embed.FS

// FS is the SDK's src/ directory: index.js and the modules it imports.
func FS() fs.FS {
	sub, err := fs.Sub(files, "src")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}
