package postgres

import (
	"context"
	"errors"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlstore"
)

// writeTx runs sqlstore's join and allocation statements in a transaction
// that holds the mesh row's lock (Store.write with lockMesh), so they are
// serialised with every other such transaction on every replica.
type writeTx struct{ tx pgx.Tx }

var _ sqlstore.JoinTx = writeTx{}

// queryRow scans one row into dest; ok is false when there is none.
func (w writeTx) queryRow(ctx context.Context, dest []any, query string, args ...any) (bool, error) {
	err := w.tx.QueryRow(ctx, query, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (w writeTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := w.tx.Exec(ctx, query, args...)
	return err
}

// JoinToken locks the token's row too.
func (w writeTx) JoinToken(ctx context.Context, id string) (sqlstore.TokenRow, bool, error) {
	var r sqlstore.TokenRow
	ok, err := w.queryRow(ctx, r.Dest(), selectToken+` WHERE id = $1 FOR UPDATE`, id)
	return r, ok, err
}

func (w writeTx) CountTokenUse(ctx context.Context, id string) error {
	return w.exec(ctx, `UPDATE tokens SET uses = uses + 1 WHERE id = $1`, id)
}

func (w writeTx) MeshPrefix(ctx context.Context) (netip.Prefix, error) {
	return meshPrefixLocked(ctx, w.tx)
}

func (w writeTx) NodeByKey(ctx context.Context, key []byte) (sqlstore.NodeRow, bool, error) {
	var r sqlstore.NodeRow
	ok, err := w.queryRow(ctx, append(r.Dest(), &r.HomeRelay), selectNode+` WHERE public_key = $1`, key)
	return r, ok, err
}

func (w writeTx) NameHolder(ctx context.Context, name string) ([]byte, bool, error) {
	var key []byte
	ok, err := w.queryRow(ctx, []any{&key}, `SELECT public_key FROM nodes WHERE name = $1`, name)
	return key, ok, err
}

func (w writeTx) InsertNode(ctx context.Context, r sqlstore.NodeRow) error {
	return w.exec(ctx, `INSERT INTO nodes (id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint,
		ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen, home_relay)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		r.ID, r.Name, r.PublicKey, r.IPIndex, r.SecretHash, r.Endpoints, r.SSHEndpoint, r.SSHHostKey, r.SSHUser, r.SSHPacketPort,
		r.Tags, r.Services, r.TokenID, r.CreatedAt, r.LastSeen, r.HomeRelay)
}

func (w writeTx) UpdateNode(ctx context.Context, r sqlstore.NodeRow) error {
	return w.exec(ctx, `UPDATE nodes SET name = $1, ip_index = $2, secret_hash = $3, endpoints = $4, ssh_endpoint = $5,
		ssh_host_key = $6, ssh_user = $7, ssh_packet_port = $8, tags = $9, services = $10, token_id = $11, last_seen = $12, home_relay = $13 WHERE id = $14`,
		r.Name, r.IPIndex, r.SecretHash, r.Endpoints, r.SSHEndpoint, r.SSHHostKey, r.SSHUser, r.SSHPacketPort,
		r.Tags, r.Services, r.TokenID, r.LastSeen, r.HomeRelay, r.ID)
}

func (w writeTx) Bump(ctx context.Context, node string) (uint64, error) {
	return bumpLocked(ctx, w.tx, node)
}

func (w writeTx) Lease(ctx context.Context, key []byte) (int64, bool, error) {
	var idx int64
	ok, err := w.queryRow(ctx, []any{&idx}, `SELECT ip_index FROM leases WHERE public_key = $1`, key)
	return idx, ok, err
}

func (w writeTx) RefreshLease(ctx context.Context, key []byte, now int64) error {
	return w.exec(ctx, `UPDATE leases SET updated_at = $1 WHERE public_key = $2`, now, key)
}

func (w writeTx) DeleteLease(ctx context.Context, key []byte) error {
	return w.exec(ctx, `DELETE FROM leases WHERE public_key = $1`, key)
}

// LowestFree is 0 when no lease holds it, else the lowest index past a
// lease whose successor is free.
func (w writeTx) LowestFree(ctx context.Context) (int64, error) {
	var next int64
	err := w.tx.QueryRow(ctx, `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM leases WHERE ip_index = 0) THEN 0
		ELSE (SELECT MIN(l.ip_index) + 1 FROM leases l WHERE NOT EXISTS (SELECT 1 FROM leases m WHERE m.ip_index = l.ip_index + 1)) END`).Scan(&next)
	return next, err
}

func (w writeTx) OldestOrphan(ctx context.Context) ([]byte, int64, bool, error) {
	var key []byte
	var idx int64
	ok, err := w.queryRow(ctx, []any{&key, &idx}, `SELECT l.public_key, l.ip_index FROM leases l
		LEFT JOIN nodes n ON n.public_key = l.public_key
		WHERE n.id IS NULL ORDER BY l.updated_at LIMIT 1`)
	return key, idx, ok, err
}

func (w writeTx) InsertLease(ctx context.Context, key []byte, idx, now int64) error {
	return w.exec(ctx, `INSERT INTO leases (public_key, ip_index, updated_at) VALUES ($1, $2, $3)`, key, idx, now)
}
