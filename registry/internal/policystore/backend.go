package policystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
)

// storeTimeout bounds each call to a store backend.
const storeTimeout = 30 * time.Second

// StoreBackend keeps the versions in a store that registry replicas share.
func StoreBackend(st store.Policies) Backend { return storeBackend{st} }

type storeBackend struct{ st store.Policies }

func (b storeBackend) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// Versions implements Backend.
func (b storeBackend) Versions() ([]uint64, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	return b.st.PolicyVersions(ctx)
}

// Read implements Backend.
func (b storeBackend) Read(v uint64) (policy.Version, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	d, err := b.st.PolicyVersion(ctx, v)
	if errors.Is(err, store.ErrNotFound) {
		return policy.Version{}, fmt.Errorf("%w: %d", ErrNotFound, v)
	}
	if err != nil {
		return policy.Version{}, err
	}
	return policy.Version{Version: d.Version, CreatedAt: d.CreatedAt, Policy: d.Doc}, nil
}

// Create implements Backend.
func (b storeBackend) Create(v policy.Version) error {
	ctx, cancel := b.ctx()
	defer cancel()
	err := b.st.CreatePolicyVersion(ctx, store.PolicyDoc{Version: v.Version, CreatedAt: v.CreatedAt, Doc: v.Policy})
	if errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("%w: version %d was stored by another replica", ErrConflict, v.Version)
	}
	return err
}

// Delete implements Backend.
func (b storeBackend) Delete(v uint64) error {
	ctx, cancel := b.ctx()
	defer cancel()
	return b.st.DeletePolicyVersion(ctx, v)
}
