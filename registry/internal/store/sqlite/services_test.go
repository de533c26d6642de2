package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// A database written by schema version 1 (before services) opens, its
// nodes have no services, and services can be set.
func TestMigrationAddsServices(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		migrations[0],
		`INSERT INTO schema_migrations VALUES (1, 0)`,
		`INSERT INTO mesh VALUES (1, 'm', '10.1.0.0/16', x'00', 7, 0)`,
		`INSERT INTO nodes VALUES ('n1', 'old', x'` + hex32 + `', 1, x'00', '[]', '', NULL, '[]', 't', 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s := open(t, path)
	_, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Services != nil {
		t.Fatalf("Nodes() after migration = %+v, %v; want node old without services", nodes, err)
	}
	if _, err := s.SetServices(ctx, "n1", []api.Service{{Name: "dns", Protocol: "udp", Port: 53}}); err != nil {
		t.Fatal(err)
	}
}

const hex32 = "0101010101010101010101010101010101010101010101010101010101010101"
