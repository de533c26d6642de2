package sqlstore

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Leases are the statements on the leases table (public_key, ip_index,
// updated_at) that Allocate runs, each in the caller's write transaction.
// Keys are raw public keys, times unix nanoseconds.
type Leases interface {
	// Lease returns the index leased to key; ok is false when there is
	// none.
	Lease(ctx context.Context, key []byte) (idx int64, ok bool, err error)
	// RefreshLease sets the update time of key's lease.
	RefreshLease(ctx context.Context, key []byte, now int64) error
	// DeleteLease deletes key's lease, if any.
	DeleteLease(ctx context.Context, key []byte) error
	// LowestFree returns the lowest index no lease holds (it may lie past
	// the range).
	LowestFree(ctx context.Context) (int64, error)
	// OldestOrphan returns the least recently updated lease of a key that
	// is no node's; ok is false when there is none.
	OldestOrphan(ctx context.Context) (key []byte, idx int64, ok bool, err error)
	// InsertLease leases idx to key.
	InsertLease(ctx context.Context, key []byte, idx, now int64) error
}

// Allocate returns the host index of cidr leased to key: its old lease
// when that is in the range, else the lowest free index, else the index of
// the oldest lease of a key that is no longer a node (store.ErrRangeFull
// when there is none).
func Allocate(ctx context.Context, l Leases, cidr netip.Prefix, key nodekey.PublicKey, now time.Time) (uint32, error) {
	total := int64(meshnet.HostCount(cidr))
	idx, ok, err := l.Lease(ctx, key[:])
	if err != nil {
		return 0, err
	}
	if ok && idx >= 0 && idx < total {
		return uint32(idx), l.RefreshLease(ctx, key[:], now.UnixNano())
	}
	if err := l.DeleteLease(ctx, key[:]); err != nil {
		return 0, err
	}
	free, err := l.LowestFree(ctx)
	if err != nil {
		return 0, err
	}
	if free >= total {
		oldKey, oldIdx, ok, err := l.OldestOrphan(ctx)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("%w %s (%d addresses)", store.ErrRangeFull, cidr, total)
		}
		if err := l.DeleteLease(ctx, oldKey); err != nil {
			return 0, err
		}
		free = oldIdx
	}
	if err := l.InsertLease(ctx, key[:], free, now.UnixNano()); err != nil {
		return 0, err
	}
	return uint32(free), nil
}
