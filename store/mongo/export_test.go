package mongo

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// Step is a format migration step, for upgrade tests.
type Step = step

// SetFormat makes f the format this build writes, reached by steps
// (steps[N-1] migrates N to N+1), until the test ends.
func SetFormat(t testing.TB, f int, s ...Step) {
	oldFormat, oldSteps := format, steps
	format, steps = f, s
	t.Cleanup(func() { format, steps = oldFormat, oldSteps })
}

// SetUpgradeLockTTL shortens the upgrade lock's lifetime until the test
// ends.
func SetUpgradeLockTTL(t testing.TB, d time.Duration) {
	old := upgradeLockTTL
	upgradeLockTTL = d
	t.Cleanup(func() { upgradeLockTTL = old })
}

// SetAfterClaimRead runs fn between a push claim's read of the latest
// claims and its insert, until the test ends.
func SetAfterClaimRead(t testing.TB, fn func()) {
	afterClaimRead = fn
	t.Cleanup(func() { afterClaimRead = nil })
}

// Part is the rows of b a claim of message m holds.
func Part(b *store.Batch, m store.Message) store.Batch { return part(b, m) }

// SetMonitor makes every Open until the test ends report its commands to m.
func SetMonitor(t testing.TB, m *event.CommandMonitor) {
	clientHook = func(o *options.ClientOptions) { o.SetMonitor(m) }
	t.Cleanup(func() { clientHook = nil })
}
