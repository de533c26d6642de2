package sqlite

import (
	"context"
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// A database of schema version 2 (before ssh_user and ssh_packet_port)
// opens; its node keeps its host key and gets no user or packet port.
func TestMigrationAddsSSHUser(t *testing.T) {
	ctx := context.Background()
	s := openOld(t,
		migrations[0], migrations[1],
		`INSERT INTO schema_migrations VALUES (1, 0), (2, 0)`,
		`INSERT INTO mesh VALUES (1, 'm', '10.1.0.0/16', x'00', 7, 0)`,
		`INSERT INTO nodes VALUES ('n1', 'old', x'`+hex32+`', 1, x'00', '[]', '192.0.2.1:22', x'`+hex32+`', '[]', 't', 0, 0, '[]')`,
	)
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
