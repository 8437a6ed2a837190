package redis_test

import (
	"context"
	"log/slog"
	"time"

	staterds "github.com/imqtt/imqtt/state/redis"
	"github.com/imqtt/imqtt/store"
)

// How a node builds its state in scale-out mode: every node gives the same
// URL, prefix and block size, and its store's ReserveVersions (the store,
// not Redis, is the authority for versions).
func ExampleOpen() {
	ctx := context.Background()
	var st store.Store // the node's store, opened before
	s, err := staterds.Open(ctx, "redis://127.0.0.1:6379/0", st.ReserveVersions, staterds.Options{
		Prefix:      "imqtt:",
		PresenceTTL: 15 * time.Second,
		Logger:      slog.Default(),
	})
	if err != nil {
		panic(err) // a clear error and a non-zero exit in imqttd
	}
	defer s.Close()
}
