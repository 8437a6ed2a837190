package e2e

import (
	"testing"

	"github.com/imqtt/imqtt/internal/mongotest"
)

// TestMain removes the devmongo binary the MongoDB tests built.
func TestMain(m *testing.M) { mongotest.Main(m) }
