package e2e

import (
	"os"
	"testing"

	"github.com/imqtt/imqtt/internal/mongotest"
)

// TestMain removes the devmongo binary the MongoDB tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Cleanup()
	os.Exit(code)
}
