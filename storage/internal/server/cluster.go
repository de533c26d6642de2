package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/cluster"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/config"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

// masterPort is the SeaweedFS master's port on every cluster node (its
// default; its gRPC port is 19333).
const masterPort = 9333

// openStore opens the credentials store: random keys kept in the data
// directory for a single node, keys derived from the cluster secret for a
// cluster node.
func openStore(cfg config.Config) (*creds.Store, error) {
	if !cfg.Cluster.Enabled() {
		return creds.Open(cfg.DataDir)
	}
	if cfg.Cluster.CreateSecret {
		if err := cluster.CreateSecret(cfg.Cluster.SecretFile); err != nil {
			return nil, err
		}
	}
	secret, err := cluster.LoadSecret(cfg.Cluster.SecretFile)
	if err != nil {
		return nil, err
	}
	return creds.OpenDerived(cfg.DataDir, cluster.NewDeriver(secret, cfg.Cluster.Epoch)), nil
}

// masterPeers resolves cfg.Cluster.Peers to SeaweedFS's -master.peers,
// starting from nm and waiting on netmaps (each newer than the last) until
// every peer named is in the netmap: a peer that has not joined yet has no
// mesh address.
func masterPeers(ctx context.Context, cfg config.ClusterConfig, nm *api.Netmap, netmaps <-chan *api.Netmap, log *slog.Logger) (string, error) {
	var logged []string
	for {
		addrs, missing, self := cluster.Resolve(cfg.Peers, nm)
		if len(missing) == 0 {
			if err := cluster.CheckResolved(cfg.Peers, addrs, self, nm.Self.IP); err != nil {
				return "", err
			}
			peers := cluster.MasterPeers(addrs, masterPort)
			log.Info("storage cluster", "peers", peers, "replication", cfg.Replication, "epoch", cfg.Epoch)
			return peers, nil
		}
		if !slices.Equal(missing, logged) {
			log.Warn("waiting for cluster peers to appear in the netmap", "missing", missing)
			logged = missing
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster.peers: %v not in the netmap: %w", missing, ctx.Err())
		case nm = <-netmaps:
		}
	}
}
