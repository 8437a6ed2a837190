package media_test

import (
	"path/filepath"
	"testing"

	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/mediatest/blobstest"
)

// TestFSBlobs runs the Blobs conformance suite on FS; another node is
// another FS on the same directory.
func TestFSBlobs(t *testing.T) {
	blobstest.Run(t, func(t *testing.T) func(t *testing.T) media.Blobs {
		root := filepath.Join(t.TempDir(), "media")
		return func(t *testing.T) media.Blobs {
			b, err := media.OpenFS(root)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	})
}
