package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released migration: append a new one.
var migrations = []string{
	// 1: initial schema.
	`CREATE TABLE mesh (
		id         INTEGER PRIMARY KEY CHECK (id = 1),
		mesh_id    TEXT    NOT NULL,
		cidr       TEXT    NOT NULL,
		psk        BLOB    NOT NULL,
		version    INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE tokens (
		id          TEXT    PRIMARY KEY,
		secret_hash BLOB    NOT NULL,
		reusable    INTEGER NOT NULL,
		tags        TEXT    NOT NULL,
		created_at  INTEGER NOT NULL,
		expires_at  INTEGER NOT NULL,
		uses        INTEGER NOT NULL DEFAULT 0,
		revoked     INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE nodes (
		id           TEXT    PRIMARY KEY,
		name         TEXT    NOT NULL UNIQUE,
		public_key   BLOB    NOT NULL UNIQUE,
		ip_index     INTEGER NOT NULL UNIQUE,
		secret_hash  BLOB    NOT NULL,
		endpoints    TEXT    NOT NULL,
		ssh_endpoint TEXT    NOT NULL,
		ssh_host_key BLOB,
		tags         TEXT    NOT NULL,
		token_id     TEXT    NOT NULL,
		created_at   INTEGER NOT NULL,
		last_seen    INTEGER NOT NULL
	);
	CREATE TABLE leases (
		public_key BLOB    PRIMARY KEY,
		ip_index   INTEGER NOT NULL UNIQUE,
		updated_at INTEGER NOT NULL
	);`,
	// 2: the services a node publishes (JSON list of api.Service).
	`ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';`,
	// 3: the login user and packet port of a node's OpenSSH endpoint.
	`ALTER TABLE nodes ADD COLUMN ssh_user TEXT NOT NULL DEFAULT '';
	ALTER TABLE nodes ADD COLUMN ssh_packet_port INTEGER NOT NULL DEFAULT 0;`,
	// 4: the mesh PSK before the last rotation and until when it is
	// still accepted (unix ns; 0: none).
	`ALTER TABLE mesh ADD COLUMN prev_psk BLOB;
	ALTER TABLE mesh ADD COLUMN prev_psk_until INTEGER NOT NULL DEFAULT 0;`,
}

// migrate brings the schema to the latest version.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", cur, len(migrations))
	}
	for v := cur + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }
