// Package postgres implements store.Store on PostgreSQL
// (github.com/jackc/pgx/v5), for several registry replicas on one
// database.
//
// Every transaction that changes what a netmap may show locks the mesh row
// (SELECT ... FOR UPDATE) before it reads anything else: such transactions
// are serialised across all replicas, and each, running at READ COMMITTED,
// reads the state every earlier one committed (token uses, leases, names).
// A single-use token therefore admits one join and two joins never get one
// address, however many replicas race.
//
// Each version bump sends a NOTIFY on Channel with the new version (and,
// for a change of one node only, its ID) in the same transaction
// (delivered at commit); WatchChanges LISTENs on it, so a change made
// through any replica reaches every replica's watchers.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlstore"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// Channel is the NOTIFY channel of version bumps; the payload is the new
// version in decimal, followed by a space and a node ID when the change
// touched that node's record only (store.Change).
const Channel = "tunnelmesh_netmap"

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	cfg  *pgxpool.Config

	// replays feeds the goroutines that record signatures in batches
	// (recordReplays); quit stops them, recorders waits for them.
	replays   chan *replayReq
	quit      chan struct{}
	recorders sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.Secrets      = (*Store)(nil)
	_ store.Changes      = (*Store)(nil)
	_ store.Policies     = (*Store)(nil)
	_ store.Replays      = (*Store)(nil)
	_ store.ScrapeTokens = (*Store)(nil)
	_ store.Relays       = (*Store)(nil)
	_ store.NodeReader   = (*Store)(nil)
)

// Options configure Open.
type Options struct {
	// Password, when not empty, replaces the DSN's password (read from a
	// file by the caller, so the DSN itself need not hold it). Without
	// either, pgx's usual sources apply (PGPASSWORD, ~/.pgpass).
	Password string
	// MaxConns bounds the connection pool (pgxpool's default when 0).
	MaxConns int32
}

// Open connects to the database dsn (postgres://... or key=value) and
// migrates it. Errors never include the DSN's password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password; do not wrap the DSN.
		return nil, fmt.Errorf("open store: postgres_dsn: %w", err)
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: connect to %s: %w", where(cfg), err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{pool: pool, cfg: cfg, replays: make(chan *replayReq, replayBatch), quit: make(chan struct{})}
	for range replayRecorders {
		s.recorders.Add(1)
		go s.recordReplays()
	}
	return s, nil
}

// where names the database without credentials, for errors and logs.
func where(cfg *pgxpool.Config) string {
	return fmt.Sprintf("database %q on %s:%d as %q", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User)
}

// Where names the database (host, port, name, user; never the password).
func (s *Store) Where() string { return where(s.cfg) }

// Close implements store.Store. Calls after the first do nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.recorders.Wait()
		s.pool.Close()
	})
	return nil
}

// write runs fn in a READ COMMITTED transaction; when lockMesh is set it
// first locks the mesh row, which serialises it with every other such
// transaction on every replica.
func (s *Store) write(ctx context.Context, lockMesh bool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if lockMesh {
			var one int
			err := tx.QueryRow(ctx, `SELECT id FROM mesh WHERE id = 1 FOR UPDATE`).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return sqlstore.ErrNoMesh
			}
			if err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// bumpLocked increments the version and notifies every listener at
// commit; node, when set, is the only node the change touched.
func bumpLocked(ctx context.Context, tx pgx.Tx, node string) (uint64, error) {
	var v int64
	if err := tx.QueryRow(ctx, `UPDATE mesh SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, sqlstore.ErrNoMesh
		}
		return 0, err
	}
	payload := strconv.FormatInt(v, 10)
	if node != "" {
		payload += " " + node
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, payload); err != nil {
		return 0, err
	}
	return uint64(v), nil
}

// InitMesh implements store.Store.
func (s *Store) InitMesh(ctx context.Context, cidr netip.Prefix, now time.Time) (store.Mesh, error) {
	if err := meshnet.Validate(cidr); err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	psk, err := sqlstore.NewPSK()
	if err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	var m store.Mesh
	err = s.write(ctx, false, func(tx pgx.Tx) error {
		// Replicas starting together: the first insert wins, the others
		// read its row.
		if _, err := tx.Exec(ctx, `INSERT INTO mesh (id, mesh_id, cidr, psk, version, created_at) VALUES (1, $1, $2, $3, 1, $4)
			ON CONFLICT (id) DO NOTHING`, sqlstore.NewMeshID(), cidr.String(), psk, now.UnixNano()); err != nil {
			return err
		}
		var row sqlstore.MeshRow
		if err := tx.QueryRow(ctx, `SELECT mesh_id, cidr, psk, created_at FROM mesh WHERE id = 1 FOR UPDATE`).Scan(row.Dest()...); err != nil {
			return err
		}
		var err error
		if m, err = row.Mesh(); err != nil || m.CIDR == cidr {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM nodes`).Scan(&n); err != nil {
			return err
		}
		if err := sqlstore.CheckCIDRChange(m.CIDR, cidr, n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM leases`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mesh SET cidr = $1 WHERE id = 1`, cidr.String()); err != nil {
			return err
		}
		m.CIDR = cidr
		_, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	return m, nil
}

// Version implements store.Store.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM mesh WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return uint64(v), nil
}

// BumpVersion implements store.Store.
func (s *Store) BumpVersion(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		var err error
		v, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bump version: %w", err)
	}
	return v, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	row, err := sqlstore.EncodeToken(t)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, secret_hash, reusable, tags, created_at, expires_at, uses, revoked)
		VALUES ($1, $2, $3, $4, $5, $6, 0, false) ON CONFLICT (id) DO NOTHING`,
		row.ID, row.SecretHash, row.Reusable, row.Tags, row.CreatedAt, row.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create token: %w", store.ErrAlreadyExists)
	}
	return nil
}

const selectToken = `SELECT id, secret_hash, reusable, tags, created_at, expires_at, uses, revoked FROM tokens`

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, selectToken+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, sqlstore.ScanToken)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements store.Store.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET revoked = true WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke token %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Join implements store.Store.
func (s *Store) Join(ctx context.Context, p store.JoinParams) (store.JoinResult, error) {
	var res store.JoinResult
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		var err error
		res, err = sqlstore.Join(ctx, writeTx{tx}, p)
		return err
	})
	if err != nil {
		return store.JoinResult{}, fmt.Errorf("join: %w", err)
	}
	return res, nil
}

func meshPrefixLocked(ctx context.Context, tx pgx.Tx) (netip.Prefix, error) {
	var s string
	if err := tx.QueryRow(ctx, `SELECT cidr FROM mesh WHERE id = 1`).Scan(&s); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return netip.Prefix{}, sqlstore.ErrNoMesh
		}
		return netip.Prefix{}, err
	}
	return netip.ParsePrefix(s)
}

const selectNode = `SELECT id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint, ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen, home_relay FROM nodes`

// scanNode decodes a selectNode row.
func scanNode(r sqlstore.Scanner, cidr netip.Prefix) (store.Node, error) {
	var row sqlstore.NodeRow
	if err := r.Scan(append(row.Dest(), &row.HomeRelay)...); err != nil {
		return store.Node{}, err
	}
	return row.Node(cidr)
}

// Nodes implements store.Store. It reads in one REPEATABLE READ
// transaction, so the version and the nodes are of one moment.
func (s *Store) Nodes(ctx context.Context) (uint64, []store.Node, error) {
	var v int64
	var out []store.Node
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var cidr netip.Prefix
		var err error
		if v, cidr, err = meshVersion(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, selectNode+` ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = sqlstore.Collect(rows, func(r sqlstore.Scanner) (store.Node, error) { return scanNode(r, cidr) })
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	return uint64(v), out, nil
}

// meshVersion reads the mesh's version and prefix in tx.
func meshVersion(ctx context.Context, tx pgx.Tx) (int64, netip.Prefix, error) {
	var v int64
	var cidrText string
	if err := tx.QueryRow(ctx, `SELECT version, cidr FROM mesh WHERE id = 1`).Scan(&v, &cidrText); err != nil {
		return 0, netip.Prefix{}, err
	}
	cidr, err := netip.ParsePrefix(cidrText)
	return v, cidr, err
}

// Node implements store.NodeReader, in one REPEATABLE READ transaction.
func (s *Store) Node(ctx context.Context, id string) (uint64, store.Node, error) {
	var v int64
	var n store.Node
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var cidr netip.Prefix
		var err error
		if v, cidr, err = meshVersion(ctx, tx); err != nil {
			return err
		}
		n, err = scanNode(tx.QueryRow(ctx, selectNode+` WHERE id = $1`, id), cidr)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return uint64(v), store.Node{}, fmt.Errorf("read node %s: %w", id, err)
	}
	return uint64(v), n, nil
}

// RemoveNode implements store.Store.
func (s *Store) RemoveNode(ctx context.Context, ref string, prevPSKUntil time.Time) (store.Node, uint64, error) {
	var n store.Node
	var v uint64
	psk, err := sqlstore.NewPSK()
	if err != nil {
		return store.Node{}, 0, fmt.Errorf("remove node %q: %w", ref, err)
	}
	err = s.write(ctx, true, func(tx pgx.Tx) error {
		cidr, err := meshPrefixLocked(ctx, tx)
		if err != nil {
			return err
		}
		where := ` WHERE name = $1`
		if api.IsNodeID(ref) {
			where = ` WHERE id = $1`
		}
		n, err = scanNode(tx.QueryRow(ctx, selectNode+where, ref), cidr)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, n.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mesh SET prev_psk = psk, prev_psk_until = $1, psk = $2 WHERE id = 1`,
			prevPSKUntil.UnixNano(), psk); err != nil {
			return err
		}
		v, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return store.Node{}, 0, fmt.Errorf("remove node %q: %w", ref, err)
	}
	return n, v, nil
}

// PSKs implements store.Store.
func (s *Store) PSKs(ctx context.Context) (store.PSKs, error) {
	var row sqlstore.PSKRow
	if err := s.pool.QueryRow(ctx, `SELECT psk, prev_psk, prev_psk_until FROM mesh WHERE id = 1`).Scan(row.Dest()...); err != nil {
		return store.PSKs{}, fmt.Errorf("read psks: %w", err)
	}
	return row.PSKs(), nil
}

// SetEndpoints implements store.Store.
func (s *Store) SetEndpoints(ctx context.Context, id string, eps []netip.AddrPort, ssh store.SSH) (uint64, error) {
	row := sqlstore.NodeRow{ID: id}
	if err := row.PutEndpoints(eps, ssh); err != nil {
		return 0, fmt.Errorf("set endpoints: %w", err)
	}
	v, err := s.updateNode(ctx, id, `UPDATE nodes SET endpoints = $1, ssh_endpoint = $2, ssh_host_key = $3, ssh_user = $4, ssh_packet_port = $5 WHERE id = $6`,
		row.Endpoints, row.SSHEndpoint, row.SSHHostKey, row.SSHUser, row.SSHPacketPort, id)
	if err != nil {
		return 0, fmt.Errorf("set endpoints of %s: %w", id, err)
	}
	return v, nil
}

// SetServices implements store.Store.
func (s *Store) SetServices(ctx context.Context, id string, svcs []api.Service) (uint64, error) {
	text, err := sqlstore.EncodeList(svcs)
	if err != nil {
		return 0, fmt.Errorf("set services: %w", err)
	}
	v, err := s.updateNode(ctx, id, `UPDATE nodes SET services = $1 WHERE id = $2`, text, id)
	if err != nil {
		return 0, fmt.Errorf("set services of %s: %w", id, err)
	}
	return v, nil
}

// updateNode runs an update of the node id and bumps the version
// (store.ErrNotFound when the update matched no node).
func (s *Store) updateNode(ctx context.Context, id, query string, args ...any) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		v, err = bumpLocked(ctx, tx, id)
		return err
	})
	return v, err
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE nodes SET last_seen = $1 WHERE id = $2 AND last_seen < $1`, at.UnixNano(), id); err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	return nil
}

// Secret implements store.Secrets: the first replica to store name wins,
// every other one reads its value.
func (s *Store) Secret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	nv, err := create()
	if err != nil {
		return nil, fmt.Errorf("create secret %s: %w", name, err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, nv, time.Now().UnixNano()); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return v, nil
}

// PolicyVersions implements store.Policies.
func (s *Store) PolicyVersions(ctx context.Context) ([]uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT version FROM policy_versions ORDER BY version DESC`)
	if err != nil {
		return nil, fmt.Errorf("list policy versions: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list policy versions: %w", err)
	}
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = uint64(v)
	}
	return out, nil
}

// PolicyVersion implements store.Policies.
func (s *Store) PolicyVersion(ctx context.Context, v uint64) (store.PolicyDoc, error) {
	d := store.PolicyDoc{Version: v}
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT created_at, policy FROM policy_versions WHERE version = $1`, int64(v)).Scan(&created, &d.Doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PolicyDoc{}, fmt.Errorf("read policy version %d: %w", v, store.ErrNotFound)
	}
	if err != nil {
		return store.PolicyDoc{}, fmt.Errorf("read policy version %d: %w", v, err)
	}
	d.CreatedAt = time.Unix(0, created).UTC()
	return d, nil
}

// CreatePolicyVersion implements store.Policies.
func (s *Store) CreatePolicyVersion(ctx context.Context, d store.PolicyDoc) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO policy_versions (version, created_at, policy) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING`,
		int64(d.Version), d.CreatedAt.UnixNano(), d.Doc)
	if err != nil {
		return fmt.Errorf("store policy version %d: %w", d.Version, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store policy version %d: %w", d.Version, store.ErrAlreadyExists)
	}
	return nil
}

// DeletePolicyVersion implements store.Policies.
func (s *Store) DeletePolicyVersion(ctx context.Context, v uint64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM policy_versions WHERE version = $1`, int64(v)); err != nil {
		return fmt.Errorf("delete policy version %d: %w", v, err)
	}
	return nil
}

// PruneReplays implements store.Replays.
func (s *Store) PruneReplays(ctx context.Context, before time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM replays WHERE at < $1`, before.UnixNano()); err != nil {
		return fmt.Errorf("prune signatures: %w", err)
	}
	return nil
}

// ScrapeTokens implements store.ScrapeTokens.
func (s *Store) ScrapeTokens(ctx context.Context) ([]store.ScrapeToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at, expires_at, hash FROM scrape_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list scrape tokens: %w", err)
	}
	defer rows.Close()
	var out []store.ScrapeToken
	for rows.Next() {
		var t store.ScrapeToken
		var created, expires int64
		if err := rows.Scan(&t.ID, &t.Name, &created, &expires, &t.Hash); err != nil {
			return nil, fmt.Errorf("list scrape tokens: %w", err)
		}
		t.CreatedAt = time.Unix(0, created).UTC()
		if expires != 0 {
			t.ExpiresAt = time.Unix(0, expires).UTC()
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list scrape tokens: %w", err)
	}
	return out, nil
}

// CreateScrapeToken implements store.ScrapeTokens. The count and the
// insert are one transaction under a table lock, so replicas racing at the
// limit store at most max.
func (s *Store) CreateScrapeToken(ctx context.Context, t store.ScrapeToken, max int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE scrape_tokens IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM scrape_tokens`).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return fmt.Errorf("%w: %d tokens exist, at most %d allowed", store.ErrRangeFull, n, max)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO scrape_tokens (id, name, created_at, expires_at, hash) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO NOTHING`, t.ID, t.Name, t.CreatedAt.UnixNano(), sqlstore.UnixNano(t.ExpiresAt), t.Hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create scrape token: %w", err)
	}
	return nil
}

// DeleteScrapeToken implements store.ScrapeTokens.
func (s *Store) DeleteScrapeToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM scrape_tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete scrape token %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete scrape token %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// RegisterRelay implements store.Relays.
func (s *Store) RegisterRelay(ctx context.Context, r api.Relay, now time.Time) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE relays SET seen_at = $4 WHERE id = $1 AND url = $2 AND tls_pin = $3`,
			r.ID, r.URL, r.TLSPin, now.UnixNano())
		if err != nil || tag.RowsAffected() == 1 {
			return err // registered as it is: refreshed
		}
		if _, err := tx.Exec(ctx, `INSERT INTO relays (id, url, tls_pin, updated_at, seen_at) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, tls_pin = EXCLUDED.tls_pin, updated_at = EXCLUDED.updated_at, seen_at = EXCLUDED.seen_at`,
			r.ID, r.URL, r.TLSPin, now.UnixNano()); err != nil {
			return err
		}
		v, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("register relay %s: %w", r.ID, err)
	}
	return v, nil
}

// Relays implements store.Relays.
func (s *Store) Relays(ctx context.Context) ([]api.Relay, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, url, tls_pin FROM relays ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	defer rows.Close()
	var out []api.Relay
	for rows.Next() {
		var r api.Relay
		if err := rows.Scan(&r.ID, &r.URL, &r.TLSPin); err != nil {
			return nil, fmt.Errorf("list relays: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	return out, nil
}

// RegisterRegistry implements store.Registries.
func (s *Store) RegisterRegistry(ctx context.Context, url string, now time.Time) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		var isNew bool
		err := tx.QueryRow(ctx, `INSERT INTO registries (url, registered_at, seen_at) VALUES ($1, $2, $2)
			ON CONFLICT (url) DO UPDATE SET seen_at = EXCLUDED.seen_at RETURNING (xmax = 0)`,
			url, now.UnixNano()).Scan(&isNew)
		if err != nil || !isNew {
			return err
		}
		v, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("register registry %s: %w", url, err)
	}
	return v, nil
}

// Registries implements store.Registries.
func (s *Store) Registries(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT url FROM registries ORDER BY url`)
	if err != nil {
		return nil, fmt.Errorf("list registries: %w", err)
	}
	urls, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list registries: %w", err)
	}
	return urls, nil
}

// ExpireReplicas implements store.Registries.
func (s *Store) ExpireReplicas(ctx context.Context, seenBefore time.Time) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		regs, err := tx.Exec(ctx, `DELETE FROM registries WHERE seen_at < $1`, seenBefore.UnixNano())
		if err != nil {
			return err
		}
		rels, err := tx.Exec(ctx, `DELETE FROM relays WHERE seen_at < $1`, seenBefore.UnixNano())
		if err != nil || regs.RowsAffected()+rels.RowsAffected() == 0 {
			return err
		}
		v, err = bumpLocked(ctx, tx, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire replicas seen before %s: %w", seenBefore.UTC().Format(time.RFC3339), err)
	}
	return v, nil
}

// SetHomeRelay implements store.Relays.
func (s *Store) SetHomeRelay(ctx context.Context, nodeID, relayID string) (uint64, error) {
	var v uint64
	err := s.write(ctx, true, func(tx pgx.Tx) error {
		var cur string
		err := tx.QueryRow(ctx, `SELECT home_relay FROM nodes WHERE id = $1`, nodeID).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil || cur == relayID {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET home_relay = $1 WHERE id = $2`, relayID, nodeID); err != nil {
			return err
		}
		v, err = bumpLocked(ctx, tx, nodeID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set home relay of %s: %w", nodeID, err)
	}
	return v, nil
}

// WatchChanges implements store.Changes: it LISTENs on Channel on a
// connection of its own and calls fn with each notified change, and with a
// zero Change after (re)connecting, since notifications sent while no
// connection listened are lost. It reconnects after errors and returns
// when ctx ends.
func (s *Store) WatchChanges(ctx context.Context, fn func(store.Change)) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, fn, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			fn(store.Change{})
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *Store) listen(ctx context.Context, fn func(store.Change), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	fn(store.Change{})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(parseChange(n.Payload))
	}
}

// parseChange decodes a notification's payload; one it cannot read is a
// zero Change (reload everything).
func parseChange(payload string) store.Change {
	vs, node, _ := strings.Cut(payload, " ")
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil || (node != "" && !api.IsNodeID(node)) {
		return store.Change{}
	}
	return store.Change{Version: v, Node: node}
}
