// Package allowset keeps an SSH server's allow-set equal to the peers in the
// node's netmap, as the registry serves it.
package allowset

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Keys returns the keys of nm's peers (the node itself excluded).
func Keys(nm *api.Netmap) []nodekey.PublicKey {
	keys := make([]nodekey.PublicKey, 0, len(nm.Peers))
	for _, p := range nm.Peers {
		if p.PublicKey.IsZero() || p.PublicKey == nm.Self.PublicKey {
			continue
		}
		keys = append(keys, p.PublicKey)
	}
	return keys
}

// Follow watches the netmap through rc and calls set with the peers' keys on
// every change, until ctx ends (then it returns nil). Registry outages are
// logged and retried; the last allow-set stays in force meanwhile.
func Follow(ctx context.Context, rc *regclient.Client, set func([]nodekey.PublicKey), log *slog.Logger) error {
	err := rc.Watch(ctx, 0, func(nm *api.Netmap) error {
		keys := Keys(nm)
		set(keys)
		log.Info("allow-set updated from the netmap", "version", nm.Version, "peers", len(keys))
		return nil
	}, func(err error) {
		log.Warn("netmap watch failed; keeping the last allow-set", "err", err)
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
