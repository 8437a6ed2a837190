package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/bans/mongorows"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/gridfs"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/migrate"
	storemongo "github.com/imqtt/imqtt/store/mongo"
)

// openMongo opens the scale-out store.
func openMongo(ctx context.Context, cfg Config) (store.Store, error) {
	st, err := storemongo.Open(ctx, cfg.MongoURI, storemongo.Options{Database: cfg.MongoDB, Logger: cfg.Logger, Upgrade: cfg.UpgradeMongo})
	if err != nil {
		return nil, fmt.Errorf("--mongo-uri: %w", err)
	}
	if err := migrate.Unfinished(ctx, st.Database()); err != nil {
		st.Close()
		return nil, fmt.Errorf("--mongo-uri: %w", err)
	}
	return st, nil
}

// openBlobs opens where media files live: GridFS in the shared MongoDB in
// scale-out, so any node serves what any node stored (with a read cache
// under the data directory), else files under the data directory.
func (d *Daemon) openBlobs() (media.Blobs, error) {
	if ms, ok := d.st.(*storemongo.Store); ok {
		b, err := gridfs.New(ms.Database(), gridfs.Options{CacheDir: filepath.Join(d.cfg.DataDir, "media-cache"), Logger: d.log})
		if err != nil {
			return nil, err
		}
		go d.sweepMedia(b)
		return b, nil
	}
	return media.OpenFS(filepath.Join(d.cfg.DataDir, "media"))
}

// sweepMedia deletes, every hour, the GridFS files that uploads cut short
// by a crash left without an object (any node may; several at once is safe).
func (d *Daemon) sweepMedia(b *gridfs.Blobs) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-d.stopBackground:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if n, err := b.Sweep(ctx, 24*time.Hour); err != nil {
			d.log.Warn("sweep media", "err", err)
		} else if n > 0 {
			d.log.Info("swept media files of uploads cut short", "files", n)
		}
		cancel()
	}
}

// banRows is where scale-out keeps bans: the store's MongoDB database.
func (d *Daemon) banRows() bans.Rows {
	if ms, ok := d.st.(*storemongo.Store); ok {
		return mongorows.New(ms.Database())
	}
	return nil
}
