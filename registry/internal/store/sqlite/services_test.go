package sqlite

import (
	"context"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// A database written by schema version 1 (before services) opens, its
// nodes have no services, and services can be set.
func TestMigrationAddsServices(t *testing.T) {
	ctx := context.Background()
	s := openOld(t,
		migrations[0],
		`INSERT INTO schema_migrations VALUES (1, 0)`,
		`INSERT INTO mesh VALUES (1, 'm', '10.1.0.0/16', x'00', 7, 0)`,
		`INSERT INTO nodes VALUES ('n1', 'old', x'`+hex32+`', 1, x'00', '[]', '', NULL, '[]', 't', 0, 0)`,
	)
	_, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Services != nil {
		t.Fatalf("Nodes() after migration = %+v, %v; want node old without services", nodes, err)
	}
	if _, err := s.SetServices(ctx, "n1", []api.Service{{Name: "dns", Protocol: "udp", Port: 53}}); err != nil {
		t.Fatal(err)
	}
}

const hex32 = "0101010101010101010101010101010101010101010101010101010101010101"
