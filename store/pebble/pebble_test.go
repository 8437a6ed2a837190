package pebble_test

import (
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/store/storetest"
)

func open(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, open)
}
