package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Services come with a join, are replaced by SetServices, survive a reopen,
// and a rejoin replaces them with the join's.
func TestServices(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s := open(t, path)
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now); err != nil {
		t.Fatal(err)
	}
	id, h := token(t, s, true)
	k := key(t)
	dns := []api.Service{{Name: api.ServiceDNS, Protocol: "udp", Port: 53}}
	res, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: h, Name: "ns1", PublicKey: k,
		NewNodeID: "id-ns1", CredentialHash: []byte("c"), Now: now, Services: dns})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Node.Services, dns) {
		t.Fatalf("Join().Node.Services = %v, want %v", res.Node.Services, dns)
	}
	services := func() []api.Service {
		t.Helper()
		_, nodes, err := s.Nodes(ctx)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Nodes() = %v, %v", nodes, err)
		}
		return nodes[0].Services
	}
	if got := services(); !reflect.DeepEqual(got, dns) {
		t.Fatalf("Nodes()[0].Services = %v, want %v", got, dns)
	}

	both := append(dns, api.Service{Name: "http", Protocol: "tcp", Port: 80})
	v0, _ := s.Version(ctx)
	v, err := s.SetServices(ctx, res.Node.ID, both)
	if err != nil || v != v0+1 {
		t.Fatalf("SetServices() = %d, %v; want version %d", v, err, v0+1)
	}
	s.Close()
	s = open(t, path)
	if got := services(); !reflect.DeepEqual(got, both) {
		t.Fatalf("after reopen: Services = %v, want %v", got, both)
	}
	if _, err := s.SetServices(ctx, "nope", dns); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetServices(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.SetServices(ctx, res.Node.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := services(); got != nil {
		t.Fatalf("after SetServices(nil): Services = %v, want none", got)
	}
	if _, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: h, Name: "ns1", PublicKey: k,
		NewNodeID: "id-x", CredentialHash: []byte("c"), Now: now, Services: dns}); err != nil {
		t.Fatal(err)
	}
	if got := services(); !reflect.DeepEqual(got, dns) {
		t.Fatalf("after rejoin: Services = %v, want %v", got, dns)
	}
}

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
