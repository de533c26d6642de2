package sqlite

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// A node's OpenSSH endpoint (host key, user, packet port) comes with a join,
// is replaced as a whole by SetEndpoints (also cleared), and survives a
// reopen.
func TestSSHFields(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s := open(t, path)
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now); err != nil {
		t.Fatal(err)
	}
	id, h := token(t, s, true)
	hk := key(t)
	want := store.SSH{Endpoint: netip.MustParseAddrPort("192.0.2.7:22"), HostKey: &hk, User: "tunnelmesh", PacketPort: 7600}
	res, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: h, Name: "b", PublicKey: key(t),
		NewNodeID: "id-b", CredentialHash: []byte("c"), Now: now,
		SSHEndpoint: want.Endpoint, SSHHostKey: want.HostKey, SSHUser: want.User, SSHPacketPort: want.PacketPort})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Node.SSH(); !got.Equal(want) {
		t.Fatalf("Join().Node.SSH() = %+v, want %+v", got, want)
	}
	stored := func() store.SSH {
		t.Helper()
		_, nodes, err := s.Nodes(ctx)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Nodes() = %v, %v", nodes, err)
		}
		return nodes[0].SSH()
	}
	if got := stored(); !got.Equal(want) {
		t.Fatalf("stored SSH = %+v, want %+v", got, want)
	}
	hk2 := key(t)
	want = store.SSH{Endpoint: netip.MustParseAddrPort("[2001:db8::1]:2222"), HostKey: &hk2, User: "mesh", PacketPort: 65535}
	if _, err := s.SetEndpoints(ctx, res.Node.ID, nil, want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	if got := stored(); !got.Equal(want) {
		t.Fatalf("after SetEndpoints and reopen: SSH = %+v, want %+v", got, want)
	}
	sshgw := store.SSH{Endpoint: netip.MustParseAddrPort("192.0.2.7:2222")}
	if _, err := s.SetEndpoints(ctx, res.Node.ID, nil, sshgw); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.Equal(sshgw) || got.HostKey != nil {
		t.Fatalf("after SetEndpoints to an sshgw endpoint: SSH = %+v, want %+v", got, sshgw)
	}
}

// A database of schema version 2 (before ssh_user and ssh_packet_port)
// opens; its node keeps its host key and gets no user or packet port.
func TestMigrationAddsSSHUser(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		migrations[0], migrations[1],
		`INSERT INTO schema_migrations VALUES (1, 0), (2, 0)`,
		`INSERT INTO mesh VALUES (1, 'm', '10.1.0.0/16', x'00', 7, 0)`,
		`INSERT INTO nodes VALUES ('n1', 'old', x'` + hex32 + `', 1, x'00', '[]', '192.0.2.1:22', x'` + hex32 + `', '[]', 't', 0, 0, '[]')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s := open(t, path)
	_, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes() after migration = %+v, %v", nodes, err)
	}
	var hk nodekey.PublicKey
	for i := range hk {
		hk[i] = 1
	}
	want := store.SSH{Endpoint: netip.MustParseAddrPort("192.0.2.1:22"), HostKey: &hk}
	if got := nodes[0].SSH(); !got.Equal(want) {
		t.Fatalf("SSH after migration = %+v, want %+v", got, want)
	}
}
