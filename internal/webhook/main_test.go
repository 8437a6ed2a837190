package webhook_test

import (
	"testing"

	"github.com/imqtt/imqtt/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }
