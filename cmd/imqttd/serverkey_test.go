package main

import (
	"strings"
	"testing"
)

// TestServerKeys: --server-key takes comma-separated keys of at least 32
// bytes, from the flag or IMQTT_SERVER_KEY; a shorter one refuses the
// start, and the error never shows a key.
func TestServerKeys(t *testing.T) {
	long1, long2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	noEnv := func(string) string { return "" }
	o, err := parse([]string{"--server-key", long1 + "," + long2}, noEnv)
	if err != nil || len(o.cfg.ServerKeys) != 2 || o.cfg.ServerKeys[1] != long2 {
		t.Fatalf("two keys: %v, %v", o, err)
	}
	o, err = parse(nil, func(k string) string {
		if k == "IMQTT_SERVER_KEY" {
			return long2
		}
		return ""
	})
	if err != nil || len(o.cfg.ServerKeys) != 1 || o.cfg.ServerKeys[0] != long2 {
		t.Fatalf("key from the environment: %v", err)
	}
	short := "short-secret-key-31-bytes-long!"
	_, err = parse([]string{"--server-key", long1 + "," + short}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("a 31-byte key: %v, want refused", err)
	}
	if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), long1) {
		t.Errorf("the error shows a key: %v", err)
	}
	if o, err := parse(nil, noEnv); err != nil || len(o.cfg.ServerKeys) != 0 {
		t.Errorf("no key: %v, %v", o.cfg.ServerKeys, err)
	}
}
