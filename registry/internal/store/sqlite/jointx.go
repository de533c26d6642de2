package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlstore"
)

// writeTx runs sqlstore's join and allocation statements in a write
// transaction (serialised by Store.write, so no row needs a lock).
type writeTx struct{ tx *sql.Tx }

var _ sqlstore.JoinTx = writeTx{}

// queryRow scans one row into dest; ok is false when there is none.
func (w writeTx) queryRow(ctx context.Context, dest []any, query string, args ...any) (bool, error) {
	err := w.tx.QueryRowContext(ctx, query, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (w writeTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := w.tx.ExecContext(ctx, query, args...)
	return err
}

func (w writeTx) JoinToken(ctx context.Context, id string) (sqlstore.TokenRow, bool, error) {
	var r sqlstore.TokenRow
	ok, err := w.queryRow(ctx, r.Dest(), selectToken+` WHERE id = ?`, id)
	return r, ok, err
}

func (w writeTx) CountTokenUse(ctx context.Context, id string) error {
	return w.exec(ctx, `UPDATE tokens SET uses = uses + 1 WHERE id = ?`, id)
}

func (w writeTx) MeshPrefix(ctx context.Context) (netip.Prefix, error) {
	return meshPrefixLocked(ctx, w.tx)
}

func (w writeTx) NodeByKey(ctx context.Context, key []byte) (sqlstore.NodeRow, bool, error) {
	var r sqlstore.NodeRow
	ok, err := w.queryRow(ctx, r.Dest(), selectNode+` WHERE public_key = ?`, key)
	return r, ok, err
}

func (w writeTx) NameHolder(ctx context.Context, name string) ([]byte, bool, error) {
	var key []byte
	ok, err := w.queryRow(ctx, []any{&key}, `SELECT public_key FROM nodes WHERE name = ?`, name)
	return key, ok, err
}

func (w writeTx) InsertNode(ctx context.Context, r sqlstore.NodeRow) error {
	return w.exec(ctx, `INSERT INTO nodes (id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint,
		ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, r.PublicKey, r.IPIndex, r.SecretHash, r.Endpoints, r.SSHEndpoint, r.SSHHostKey, r.SSHUser, r.SSHPacketPort,
		r.Tags, r.Services, r.TokenID, r.CreatedAt, r.LastSeen)
}

func (w writeTx) UpdateNode(ctx context.Context, r sqlstore.NodeRow) error {
	return w.exec(ctx, `UPDATE nodes SET name = ?, ip_index = ?, secret_hash = ?, endpoints = ?, ssh_endpoint = ?,
		ssh_host_key = ?, ssh_user = ?, ssh_packet_port = ?, tags = ?, services = ?, token_id = ?, last_seen = ? WHERE id = ?`,
		r.Name, r.IPIndex, r.SecretHash, r.Endpoints, r.SSHEndpoint, r.SSHHostKey, r.SSHUser, r.SSHPacketPort,
		r.Tags, r.Services, r.TokenID, r.LastSeen, r.ID)
}

func (w writeTx) Bump(ctx context.Context, _ string) (uint64, error) { return bumpLocked(ctx, w.tx) }

func (w writeTx) Lease(ctx context.Context, key []byte) (int64, bool, error) {
	var idx int64
	ok, err := w.queryRow(ctx, []any{&idx}, `SELECT ip_index FROM leases WHERE public_key = ?`, key)
	return idx, ok, err
}

func (w writeTx) RefreshLease(ctx context.Context, key []byte, now int64) error {
	return w.exec(ctx, `UPDATE leases SET updated_at = ? WHERE public_key = ?`, now, key)
}

func (w writeTx) DeleteLease(ctx context.Context, key []byte) error {
	return w.exec(ctx, `DELETE FROM leases WHERE public_key = ?`, key)
}

// LowestFree walks the leases in index order to the first gap.
func (w writeTx) LowestFree(ctx context.Context) (int64, error) {
	rows, err := w.tx.QueryContext(ctx, `SELECT ip_index FROM leases ORDER BY ip_index`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var next int64
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return 0, err
		}
		if idx > next {
			break
		}
		next = idx + 1
	}
	return next, rows.Err()
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
	return w.exec(ctx, `INSERT INTO leases (public_key, ip_index, updated_at) VALUES (?, ?, ?)`, key, idx, now)
}
