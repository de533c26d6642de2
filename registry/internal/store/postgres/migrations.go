package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released migration: append a new one. Times are unix
// nanoseconds (0: none), as in the SQLite store.
var migrations = []string{
	// 1: initial schema.
	`CREATE TABLE mesh (
		id             INTEGER PRIMARY KEY CHECK (id = 1),
		mesh_id        TEXT    NOT NULL,
		cidr           TEXT    NOT NULL,
		psk            BYTEA   NOT NULL,
		prev_psk       BYTEA,
		prev_psk_until BIGINT  NOT NULL DEFAULT 0,
		version        BIGINT  NOT NULL,
		created_at     BIGINT  NOT NULL
	);
	CREATE TABLE tokens (
		id          TEXT    PRIMARY KEY,
		secret_hash BYTEA   NOT NULL,
		reusable    BOOLEAN NOT NULL,
		tags        TEXT    NOT NULL,
		created_at  BIGINT  NOT NULL,
		expires_at  BIGINT  NOT NULL,
		uses        BIGINT  NOT NULL DEFAULT 0,
		revoked     BOOLEAN NOT NULL DEFAULT false
	);
	CREATE TABLE nodes (
		id              TEXT    PRIMARY KEY,
		name            TEXT    NOT NULL UNIQUE,
		public_key      BYTEA   NOT NULL UNIQUE,
		ip_index        BIGINT  NOT NULL UNIQUE,
		secret_hash     BYTEA   NOT NULL,
		endpoints       TEXT    NOT NULL,
		ssh_endpoint    TEXT    NOT NULL,
		ssh_host_key    BYTEA,
		ssh_user        TEXT    NOT NULL DEFAULT '',
		ssh_packet_port INTEGER NOT NULL DEFAULT 0,
		tags            TEXT    NOT NULL,
		services        TEXT    NOT NULL DEFAULT '[]',
		token_id        TEXT    NOT NULL,
		created_at      BIGINT  NOT NULL,
		last_seen       BIGINT  NOT NULL
	);
	CREATE TABLE leases (
		public_key BYTEA   PRIMARY KEY,
		ip_index   BIGINT  NOT NULL UNIQUE,
		updated_at BIGINT  NOT NULL
	);
	CREATE TABLE secrets (
		name       TEXT   PRIMARY KEY,
		value      BYTEA  NOT NULL,
		created_at BIGINT NOT NULL
	);`,
	// 2: policy versions (package policystore).
	`CREATE TABLE policy_versions (
		version    BIGINT PRIMARY KEY,
		created_at BIGINT NOT NULL,
		policy     TEXT   NOT NULL
	);`,
	// 3: hashes of accepted request signatures (package replaylog).
	`CREATE TABLE replays (
		hash BYTEA  PRIMARY KEY,
		at   BIGINT NOT NULL
	);
	CREATE INDEX replays_at ON replays (at);`,
	// 4: Prometheus scrape tokens (package scrapecred).
	`CREATE TABLE scrape_tokens (
		id         TEXT   PRIMARY KEY,
		name       TEXT   NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		hash       TEXT   NOT NULL
	);`,
	// 5: every replica's relay, and the relay each node listens on.
	`CREATE TABLE relays (
		id         TEXT   PRIMARY KEY,
		url        TEXT   NOT NULL,
		tls_pin    TEXT   NOT NULL,
		updated_at BIGINT NOT NULL
	);
	ALTER TABLE nodes ADD COLUMN home_relay TEXT NOT NULL DEFAULT '';`,
	// 6: every replica's API URL, listed in netmaps for node failover.
	`CREATE TABLE registries (
		url           TEXT   PRIMARY KEY,
		registered_at BIGINT NOT NULL
	);`,
	// 7: when each replica last registered its URL and relay, so that
	// replicas gone for good expire.
	`ALTER TABLE registries ADD COLUMN seen_at BIGINT NOT NULL DEFAULT 0;
	UPDATE registries SET seen_at = registered_at;
	ALTER TABLE relays ADD COLUMN seen_at BIGINT NOT NULL DEFAULT 0;
	UPDATE relays SET seen_at = updated_at;`,
}

// migrateLockID is the advisory lock that serialises migrations of
// replicas starting at the same time.
const migrateLockID = 0x746d7265 // "tmre"

// migrate brings the schema to the latest version.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockID)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT  NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", cur, len(migrations))
	}
	for v := cur + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }
