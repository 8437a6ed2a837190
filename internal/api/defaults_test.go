package api

import (
	"testing"

	"github.com/imqtt/imqtt/internal/metrics"
)

// TestConfigDefaults: zero limits take the Default constants, which
// cmd/imqttd's --http-* flags default to; a setting given is kept.
func TestConfigDefaults(t *testing.T) {
	m := metrics.New()
	c := New(Config{Metrics: m}).cfg
	if c.MaxBody != DefaultMaxBody || c.BodyTimeout != DefaultBodyTimeout || c.UploadMinRate != DefaultUploadMinRate ||
		c.UploadWindow != DefaultUploadWindow || c.Logger == nil {
		t.Fatalf("filled %+v", c)
	}
	if c := New(Config{Metrics: m, UploadMinRate: 7}).cfg; c.UploadMinRate != 7 {
		t.Fatalf("a setting given was replaced: %+v", c)
	}
}
