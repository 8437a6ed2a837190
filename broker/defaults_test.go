package broker

import "testing"

// TestFillDefaults: zero Options take the Default constants, which
// cmd/imqttd's flags default to; a setting given is kept.
func TestFillDefaults(t *testing.T) {
	var o Options
	o.fill()
	if o.MaxPacketSize != DefaultMaxPacketSize || o.MaxWritesPending != DefaultMaxWritesPending || o.Keepalive != DefaultKeepalive ||
		o.SessionExpiry != DefaultSessionExpiry || o.MaxInflight != DefaultMaxInflight || o.ReadBuffer != DefaultReadBuffer ||
		o.WriteBuffer != DefaultWriteBuffer || o.ConnectTimeout != DefaultConnectTimeout ||
		o.MaxPreauthPerIP != DefaultMaxPreauthPerIP || o.MaxPreauth != DefaultMaxPreauth || o.Logger == nil {
		t.Fatalf("filled %+v", o)
	}
	o = Options{MaxPacketSize: 1000, MaxPreauth: 3}
	o.fill()
	if o.MaxPacketSize != 1000 || o.MaxPreauth != 3 {
		t.Fatalf("a setting given was replaced: %+v", o)
	}
}
