// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go) in WAL mode. Writes are serialised by the
// store itself, so transactions never fight over the database lock; reads
// run in parallel.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlstore"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// FileName is the database file's name in the data directory.
const FileName = "registry.db"

// Store is a store.Store on SQLite.
type Store struct {
	db      *sql.DB
	writeMu sync.Mutex // serialises write transactions
	cidr    netip.Prefix
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.NodeReader = (*Store)(nil)
)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// createPrivate creates the database file with mode 0600 before SQLite
// opens it, and narrows an existing one and its -wal and -shm files to
// 0600. SQLite creates the -wal and -shm files with the database file's
// mode, so none of them is ever readable by others (they hold the PSK).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

// write runs fn in a write transaction, serialised with every other write.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func bumpLocked(ctx context.Context, tx *sql.Tx) (uint64, error) {
	var v uint64
	if err := tx.QueryRowContext(ctx, `UPDATE mesh SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, sqlstore.ErrNoMesh
		}
		return 0, err
	}
	return v, nil
}

// InitMesh implements store.Store.
func (s *Store) InitMesh(ctx context.Context, cidr netip.Prefix, now time.Time) (store.Mesh, error) {
	if err := meshnet.Validate(cidr); err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	var m store.Mesh
	err := s.write(ctx, func(tx *sql.Tx) error {
		var row sqlstore.MeshRow
		err := tx.QueryRowContext(ctx, `SELECT mesh_id, cidr, psk, created_at FROM mesh WHERE id = 1`).Scan(row.Dest()...)
		if errors.Is(err, sql.ErrNoRows) {
			psk, err := sqlstore.NewPSK()
			if err != nil {
				return err
			}
			m = store.Mesh{ID: sqlstore.NewMeshID(), CIDR: cidr, PSK: psk, CreatedAt: now}
			_, err = tx.ExecContext(ctx, `INSERT INTO mesh (id, mesh_id, cidr, psk, version, created_at) VALUES (1, ?, ?, ?, 1, ?)`,
				m.ID, cidr.String(), psk, now.UnixNano())
			return err
		}
		if err != nil {
			return err
		}
		if m, err = row.Mesh(); err != nil || m.CIDR == cidr {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes`).Scan(&n); err != nil {
			return err
		}
		if err := sqlstore.CheckCIDRChange(m.CIDR, cidr, n); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mesh SET cidr = ? WHERE id = 1`, cidr.String()); err != nil {
			return err
		}
		m.CIDR = cidr
		_, err = bumpLocked(ctx, tx)
		return err
	})
	if err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	s.cidr = m.CIDR
	return m, nil
}

// Version implements store.Store.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	var v uint64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM mesh WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return v, nil
}

// BumpVersion implements store.Store.
func (s *Store) BumpVersion(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		v, err = bumpLocked(ctx, tx)
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE id = ?`, t.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrAlreadyExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, secret_hash, reusable, tags, created_at, expires_at, uses, revoked)
			VALUES (?, ?, ?, ?, ?, ?, 0, 0)`,
			row.ID, row.SecretHash, row.Reusable, row.Tags, row.CreatedAt, row.ExpiresAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

const selectToken = `SELECT id, secret_hash, reusable, tags, created_at, expires_at, uses, revoked FROM tokens`

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, selectToken+` ORDER BY created_at, id`)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// Join implements store.Store. This store keeps no home relay.
func (s *Store) Join(ctx context.Context, p store.JoinParams) (store.JoinResult, error) {
	p.HomeRelay = ""
	var res store.JoinResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = sqlstore.Join(ctx, writeTx{tx}, p)
		return err
	})
	if err != nil {
		return store.JoinResult{}, fmt.Errorf("join: %w", err)
	}
	return res, nil
}

func meshPrefixLocked(ctx context.Context, tx *sql.Tx) (netip.Prefix, error) {
	var s string
	if err := tx.QueryRowContext(ctx, `SELECT cidr FROM mesh WHERE id = 1`).Scan(&s); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return netip.Prefix{}, sqlstore.ErrNoMesh
		}
		return netip.Prefix{}, err
	}
	return netip.ParsePrefix(s)
}

const selectNode = `SELECT id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint, ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen FROM nodes`

// scanNode decodes a selectNode row.
func scanNode(r sqlstore.Scanner, cidr netip.Prefix) (store.Node, error) {
	var row sqlstore.NodeRow
	if err := r.Scan(row.Dest()...); err != nil {
		return store.Node{}, err
	}
	return row.Node(cidr)
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context) (uint64, []store.Node, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	defer tx.Rollback()
	var v uint64
	var cidrText string
	if err := tx.QueryRowContext(ctx, `SELECT version, cidr FROM mesh WHERE id = 1`).Scan(&v, &cidrText); err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	cidr, err := netip.ParsePrefix(cidrText)
	if err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	rows, err := tx.QueryContext(ctx, selectNode+` ORDER BY name`)
	if err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(r sqlstore.Scanner) (store.Node, error) { return scanNode(r, cidr) })
	if err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	return v, out, nil
}

// Node implements store.NodeReader, in one read transaction.
func (s *Store) Node(ctx context.Context, id string) (uint64, store.Node, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, store.Node{}, fmt.Errorf("read node %s: %w", id, err)
	}
	defer tx.Rollback()
	var v uint64
	var cidrText string
	if err := tx.QueryRowContext(ctx, `SELECT version, cidr FROM mesh WHERE id = 1`).Scan(&v, &cidrText); err != nil {
		return 0, store.Node{}, fmt.Errorf("read node %s: %w", id, err)
	}
	cidr, err := netip.ParsePrefix(cidrText)
	if err != nil {
		return 0, store.Node{}, fmt.Errorf("read node %s: %w", id, err)
	}
	n, err := scanNode(tx.QueryRowContext(ctx, selectNode+` WHERE id = ?`, id), cidr)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return v, store.Node{}, fmt.Errorf("read node %s: %w", id, err)
	}
	return v, n, nil
}

// RemoveNode implements store.Store.
func (s *Store) RemoveNode(ctx context.Context, ref string, prevPSKUntil time.Time) (store.Node, uint64, error) {
	var n store.Node
	var v uint64
	err := s.write(ctx, func(tx *sql.Tx) error {
		cidr, err := meshPrefixLocked(ctx, tx)
		if err != nil {
			return err
		}
		// Names never have the form of a node ID (api.ValidateName), so
		// ref is one or the other.
		where := ` WHERE name = ?`
		if api.IsNodeID(ref) {
			where = ` WHERE id = ?`
		}
		n, err = scanNode(tx.QueryRowContext(ctx, selectNode+where, ref), cidr)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?`, n.ID); err != nil {
			return err
		}
		psk, err := sqlstore.NewPSK()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mesh SET prev_psk = psk, prev_psk_until = ?, psk = ? WHERE id = 1`,
			prevPSKUntil.UnixNano(), psk); err != nil {
			return err
		}
		v, err = bumpLocked(ctx, tx)
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
	if err := s.db.QueryRowContext(ctx, `SELECT psk, prev_psk, prev_psk_until FROM mesh WHERE id = 1`).Scan(row.Dest()...); err != nil {
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
	v, err := s.updateNode(ctx, `UPDATE nodes SET endpoints = ?, ssh_endpoint = ?, ssh_host_key = ?, ssh_user = ?, ssh_packet_port = ? WHERE id = ?`,
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
	v, err := s.updateNode(ctx, `UPDATE nodes SET services = ? WHERE id = ?`, text, id)
	if err != nil {
		return 0, fmt.Errorf("set services of %s: %w", id, err)
	}
	return v, nil
}

// updateNode runs an update of one node and bumps the version
// (store.ErrNotFound when the update matched no node).
func (s *Store) updateNode(ctx context.Context, query string, args ...any) (uint64, error) {
	var v uint64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		v, err = bumpLocked(ctx, tx)
		return err
	})
	return v, err
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE nodes SET last_seen = ? WHERE id = ? AND last_seen < ?`, at.UnixNano(), id, at.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	return nil
}
