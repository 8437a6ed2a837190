package mongo

import "testing"

// Step is a format migration step, for upgrade tests.
type Step = step

// SetFormat makes f the format this build writes, reached by steps
// (steps[N-1] migrates N to N+1), until the test ends.
func SetFormat(t testing.TB, f int, s ...Step) {
	oldFormat, oldSteps := format, steps
	format, steps = f, s
	t.Cleanup(func() { format, steps = oldFormat, oldSteps })
}
