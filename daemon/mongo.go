package daemon

import (
	"context"
	"errors"

	"github.com/imqtt/imqtt/store"
)

// openMongo opens the scale-out store.
func openMongo(ctx context.Context, cfg Config) (store.Store, error) {
	return nil, errors.New("store/mongo is not in this build yet")
}
