// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go) in WAL mode. Writes are serialised by the
// store itself, so transactions never fight over the database lock; reads
// run in parallel.
package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// FileName is the database file's name in the data directory.
const FileName = "registry.db"

// Store is a store.Store on SQLite.
type Store struct {
	db      *sql.DB
	writeMu sync.Mutex // serialises write transactions
	cidr    netip.Prefix
}

var _ store.Store = (*Store)(nil)

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
			return 0, fmt.Errorf("mesh not initialised")
		}
		return 0, err
	}
	return v, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// InitMesh implements store.Store.
func (s *Store) InitMesh(ctx context.Context, cidr netip.Prefix, now time.Time) (store.Mesh, error) {
	if err := meshnet.Validate(cidr); err != nil {
		return store.Mesh{}, fmt.Errorf("init mesh: %w", err)
	}
	var m store.Mesh
	err := s.write(ctx, func(tx *sql.Tx) error {
		var cidrText string
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT mesh_id, cidr, psk, created_at FROM mesh WHERE id = 1`).Scan(&m.ID, &cidrText, &m.PSK, &created)
		if errors.Is(err, sql.ErrNoRows) {
			psk := make([]byte, api.PSKSize)
			if _, err := rand.Read(psk); err != nil {
				return err
			}
			m = store.Mesh{ID: randHex(8), CIDR: cidr, PSK: psk, CreatedAt: now}
			_, err = tx.ExecContext(ctx, `INSERT INTO mesh (id, mesh_id, cidr, psk, version, created_at) VALUES (1, ?, ?, ?, 1, ?)`,
				m.ID, cidr.String(), psk, now.UnixNano())
			return err
		}
		if err != nil {
			return err
		}
		m.CreatedAt = time.Unix(0, created)
		old, err := netip.ParsePrefix(cidrText)
		if err != nil {
			return fmt.Errorf("stored mesh prefix %q: %w", cidrText, err)
		}
		m.CIDR = old
		if old == cidr {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: stored %s, configured %s, %d nodes", store.ErrCIDRChanged, old, cidr, n)
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
	tags, err := json.Marshal(nonNil(t.Tags))
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
			t.ID, t.SecretHash, t.Reusable, string(tags), t.CreatedAt.UnixNano(), unixOrZero(t.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, secret_hash, reusable, tags, created_at, expires_at, uses, revoked FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		var t store.Token
		var tags string
		var created, expires int64
		if err := rows.Scan(&t.ID, &t.SecretHash, &t.Reusable, &tags, &created, &expires, &t.Uses, &t.Revoked); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &t.Tags); err != nil {
			return nil, fmt.Errorf("list tokens: token %s tags: %w", t.ID, err)
		}
		t.CreatedAt = time.Unix(0, created)
		t.ExpiresAt = timeOrZero(expires)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
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

// Join implements store.Store.
func (s *Store) Join(ctx context.Context, p store.JoinParams) (store.JoinResult, error) {
	var res store.JoinResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		tags, err := consumeTokenLocked(ctx, tx, p)
		if err != nil {
			return err
		}
		cidr, err := meshPrefixLocked(ctx, tx)
		if err != nil {
			return err
		}
		// The node this key already is, if any.
		existing, err := scanNode(tx.QueryRowContext(ctx, selectNode+` WHERE public_key = ?`, p.PublicKey[:]), cidr)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			existing = nil
		case err != nil:
			return err
		}
		// The name must be free or already this key's.
		var otherKey []byte
		err = tx.QueryRowContext(ctx, `SELECT public_key FROM nodes WHERE name = ?`, p.Name).Scan(&otherKey)
		if err == nil && subtle.ConstantTimeCompare(otherKey, p.PublicKey[:]) != 1 {
			return fmt.Errorf("%w: %q", store.ErrNameTaken, p.Name)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		idx, err := allocateLocked(ctx, tx, cidr, p.PublicKey, p.Now)
		if err != nil {
			return err
		}
		eps, err := json.Marshal(nonNilEps(p.Endpoints))
		if err != nil {
			return err
		}
		tagsJSON, err := json.Marshal(nonNil(tags))
		if err != nil {
			return err
		}
		svcs, err := json.Marshal(nonNilSvcs(p.Services))
		if err != nil {
			return err
		}
		var hostKey []byte
		if p.SSHHostKey != nil {
			hostKey = p.SSHHostKey[:]
		}
		id := p.NewNodeID
		created := p.Now
		if existing != nil {
			id = existing.ID
			created = existing.CreatedAt
			res.Rejoined = true
			_, err = tx.ExecContext(ctx, `UPDATE nodes SET name = ?, ip_index = ?, secret_hash = ?, endpoints = ?, ssh_endpoint = ?,
				ssh_host_key = ?, ssh_user = ?, ssh_packet_port = ?, tags = ?, services = ?, token_id = ?, last_seen = ? WHERE id = ?`,
				p.Name, idx, p.CredentialHash, string(eps), addrPortText(p.SSHEndpoint), hostKey, p.SSHUser, int64(p.SSHPacketPort),
				string(tagsJSON), string(svcs), p.TokenID, p.Now.UnixNano(), id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO nodes (id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint,
				ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, p.Name, p.PublicKey[:], idx, p.CredentialHash, string(eps), addrPortText(p.SSHEndpoint), hostKey, p.SSHUser, int64(p.SSHPacketPort),
				string(tagsJSON), string(svcs), p.TokenID, p.Now.UnixNano(), p.Now.UnixNano())
		}
		if err != nil {
			return err
		}
		ip, err := meshnet.HostAt(cidr, idx)
		if err != nil {
			return err
		}
		res.Node = store.Node{
			ID: id, Name: p.Name, IP: ip, PublicKey: p.PublicKey, SecretHash: p.CredentialHash,
			Endpoints: p.Endpoints, SSHEndpoint: p.SSHEndpoint, SSHHostKey: p.SSHHostKey,
			SSHUser: p.SSHUser, SSHPacketPort: p.SSHPacketPort, Tags: tags,
			Services: nilIfEmpty(p.Services), TokenID: p.TokenID, CreatedAt: created, LastSeen: p.Now,
		}
		res.Version, err = bumpLocked(ctx, tx)
		return err
	})
	if err != nil {
		return store.JoinResult{}, fmt.Errorf("join: %w", err)
	}
	return res, nil
}

// consumeTokenLocked checks the token and counts one use; it returns the
// token's tags.
func consumeTokenLocked(ctx context.Context, tx *sql.Tx, p store.JoinParams) ([]string, error) {
	var hash []byte
	var reusable, revoked bool
	var expires int64
	var uses int
	var tagsJSON string
	err := tx.QueryRowContext(ctx, `SELECT secret_hash, reusable, revoked, expires_at, uses, tags FROM tokens WHERE id = ?`, p.TokenID).
		Scan(&hash, &reusable, &revoked, &expires, &uses, &tagsJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	switch {
	case subtle.ConstantTimeCompare(hash, p.TokenSecretHash[:]) != 1:
		return nil, store.ErrTokenInvalid
	case revoked:
		return nil, fmt.Errorf("%w: revoked", store.ErrTokenInvalid)
	case expires != 0 && p.Now.UnixNano() >= expires:
		return nil, fmt.Errorf("%w: expired", store.ErrTokenInvalid)
	case !reusable && uses > 0:
		return nil, fmt.Errorf("%w: already used", store.ErrTokenInvalid)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET uses = uses + 1 WHERE id = ?`, p.TokenID); err != nil {
		return nil, err
	}
	var tags []string
	if err := json.Unmarshal([]byte(tagsJSON), &tags); err != nil {
		return nil, fmt.Errorf("token tags: %w", err)
	}
	return tags, nil
}

func meshPrefixLocked(ctx context.Context, tx *sql.Tx) (netip.Prefix, error) {
	var s string
	if err := tx.QueryRowContext(ctx, `SELECT cidr FROM mesh WHERE id = 1`).Scan(&s); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return netip.Prefix{}, fmt.Errorf("mesh not initialised")
		}
		return netip.Prefix{}, err
	}
	return netip.ParsePrefix(s)
}

// allocateLocked returns the host index leased to key: its old lease, else
// the lowest free index, else the oldest lease of a key that is no longer
// a node.
func allocateLocked(ctx context.Context, tx *sql.Tx, cidr netip.Prefix, key nodekey.PublicKey, now time.Time) (uint32, error) {
	total := meshnet.HostCount(cidr)
	var idx int64
	err := tx.QueryRowContext(ctx, `SELECT ip_index FROM leases WHERE public_key = ?`, key[:]).Scan(&idx)
	if err == nil && idx >= 0 && idx < int64(total) {
		_, err = tx.ExecContext(ctx, `UPDATE leases SET updated_at = ? WHERE public_key = ?`, now.UnixNano(), key[:])
		return uint32(idx), err
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE public_key = ?`, key[:]); err != nil {
		return 0, err
	}
	free, ok, err := lowestFreeLocked(ctx, tx, total)
	if err != nil {
		return 0, err
	}
	if !ok {
		// Reclaim the oldest lease of a key that is no longer a node.
		var oldKey []byte
		err := tx.QueryRowContext(ctx, `SELECT l.public_key, l.ip_index FROM leases l
			LEFT JOIN nodes n ON n.public_key = l.public_key
			WHERE n.id IS NULL ORDER BY l.updated_at LIMIT 1`).Scan(&oldKey, &idx)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("%w %s (%d addresses)", store.ErrRangeFull, cidr, total)
		}
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE public_key = ?`, oldKey); err != nil {
			return 0, err
		}
		free = uint32(idx)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases (public_key, ip_index, updated_at) VALUES (?, ?, ?)`, key[:], free, now.UnixNano()); err != nil {
		return 0, err
	}
	return free, nil
}

func lowestFreeLocked(ctx context.Context, tx *sql.Tx, total uint32) (uint32, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT ip_index FROM leases ORDER BY ip_index`)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	var next int64
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return 0, false, err
		}
		if idx > next {
			break
		}
		next = idx + 1
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if next >= int64(total) {
		return 0, false, nil
	}
	return uint32(next), true, nil
}

const selectNode = `SELECT id, name, public_key, ip_index, secret_hash, endpoints, ssh_endpoint, ssh_host_key, ssh_user, ssh_packet_port, tags, services, token_id, created_at, last_seen FROM nodes`

type rowScanner interface{ Scan(dest ...any) error }

func scanNode(r rowScanner, cidr netip.Prefix) (*store.Node, error) {
	var n store.Node
	var key, hostKey []byte
	var idx int64
	var eps, sshEP, tags, svcs string
	var created, seen, packetPort int64
	if err := r.Scan(&n.ID, &n.Name, &key, &idx, &n.SecretHash, &eps, &sshEP, &hostKey, &n.SSHUser, &packetPort, &tags, &svcs, &n.TokenID, &created, &seen); err != nil {
		return nil, err
	}
	if packetPort < 0 || packetPort > 65535 {
		return nil, fmt.Errorf("node %s: stored ssh packet port %d out of range", n.ID, packetPort)
	}
	n.SSHPacketPort = uint16(packetPort)
	if len(key) != nodekey.PublicKeySize {
		return nil, fmt.Errorf("node %s: stored key has %d bytes", n.ID, len(key))
	}
	copy(n.PublicKey[:], key)
	if len(hostKey) == nodekey.PublicKeySize {
		var hk nodekey.PublicKey
		copy(hk[:], hostKey)
		n.SSHHostKey = &hk
	}
	ip, err := meshnet.HostAt(cidr, uint32(idx))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.ID, err)
	}
	n.IP = ip
	if err := json.Unmarshal([]byte(eps), &n.Endpoints); err != nil {
		return nil, fmt.Errorf("node %s endpoints: %w", n.ID, err)
	}
	if len(n.Endpoints) == 0 {
		n.Endpoints = nil
	}
	if sshEP != "" {
		if n.SSHEndpoint, err = netip.ParseAddrPort(sshEP); err != nil {
			return nil, fmt.Errorf("node %s ssh endpoint: %w", n.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(tags), &n.Tags); err != nil {
		return nil, fmt.Errorf("node %s tags: %w", n.ID, err)
	}
	if len(n.Tags) == 0 {
		n.Tags = nil
	}
	if err := json.Unmarshal([]byte(svcs), &n.Services); err != nil {
		return nil, fmt.Errorf("node %s services: %w", n.ID, err)
	}
	n.Services = nilIfEmpty(n.Services)
	n.CreatedAt = time.Unix(0, created)
	n.LastSeen = timeOrZero(seen)
	return &n, nil
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
	var out []store.Node
	for rows.Next() {
		n, err := scanNode(rows, cidr)
		if err != nil {
			return 0, nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, *n)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("list nodes: %w", err)
	}
	return v, out, nil
}

// RemoveNode implements store.Store.
func (s *Store) RemoveNode(ctx context.Context, ref string, prevPSKUntil time.Time) (store.Node, uint64, error) {
	var n *store.Node
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
		psk := make([]byte, api.PSKSize)
		if _, err := rand.Read(psk); err != nil {
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
	return *n, v, nil
}

// PSKs implements store.Store.
func (s *Store) PSKs(ctx context.Context) (store.PSKs, error) {
	var p store.PSKs
	var until int64
	err := s.db.QueryRowContext(ctx, `SELECT psk, prev_psk, prev_psk_until FROM mesh WHERE id = 1`).Scan(&p.Current, &p.Previous, &until)
	if err != nil {
		return store.PSKs{}, fmt.Errorf("read psks: %w", err)
	}
	if len(p.Previous) == 0 {
		p.Previous = nil
	} else {
		p.PreviousUntil = time.Unix(0, until).UTC()
	}
	return p, nil
}

// SetEndpoints implements store.Store.
func (s *Store) SetEndpoints(ctx context.Context, id string, eps []netip.AddrPort, ssh store.SSH) (uint64, error) {
	b, err := json.Marshal(nonNilEps(eps))
	if err != nil {
		return 0, fmt.Errorf("set endpoints: %w", err)
	}
	var v uint64
	err = s.write(ctx, func(tx *sql.Tx) error {
		var hostKey []byte
		if ssh.HostKey != nil {
			hostKey = ssh.HostKey[:]
		}
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET endpoints = ?, ssh_endpoint = ?, ssh_host_key = ?, ssh_user = ?, ssh_packet_port = ? WHERE id = ?`,
			string(b), addrPortText(ssh.Endpoint), hostKey, ssh.User, int64(ssh.PacketPort), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		v, err = bumpLocked(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set endpoints of %s: %w", id, err)
	}
	return v, nil
}

// SetServices implements store.Store.
func (s *Store) SetServices(ctx context.Context, id string, svcs []api.Service) (uint64, error) {
	b, err := json.Marshal(nonNilSvcs(svcs))
	if err != nil {
		return 0, fmt.Errorf("set services: %w", err)
	}
	var v uint64
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET services = ? WHERE id = ?`, string(b), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		v, err = bumpLocked(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set services of %s: %w", id, err)
	}
	return v, nil
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET last_seen = ? WHERE id = ? AND last_seen < ?`, at.UnixNano(), id, at.UnixNano())
		if err != nil {
			return err
		}
		_ = res
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	return nil
}

func addrPortText(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilEps(s []netip.AddrPort) []netip.AddrPort {
	if s == nil {
		return []netip.AddrPort{}
	}
	return s
}

func nonNilSvcs(s []api.Service) []api.Service {
	if s == nil {
		return []api.Service{}
	}
	return s
}

func nilIfEmpty(s []api.Service) []api.Service {
	if len(s) == 0 {
		return nil
	}
	return s
}
