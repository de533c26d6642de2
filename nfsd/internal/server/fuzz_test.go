package server

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/handle"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/rootfs"
)

// FuzzFromHandle: any handle bytes from any source address either resolve
// inside an export the source has a grant on, or fail; never a panic.
func FuzzFromHandle(f *testing.F) {
	fx := newFixture(f)
	root := fx.srv.byName["shared"].index.Handle(".")
	f.Add(root, []byte(ipBuild1.AsSlice()))
	f.Add(root, []byte(ipPhone.AsSlice()))
	f.Add(root[:10], []byte{192, 0, 2, 1})
	f.Add(handle.Make(handle.IDOf("backups"), 1, 2), []byte(ipViewer.AsSlice()))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, fh, ip []byte) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		h := &handler{s: fx.srv, addr: a}
		fs, p, err := h.FromHandle(fh)
		if err != nil {
			return
		}
		n, lerr := fx.ids.Current().Lookup(a)
		if lerr != nil {
			t.Fatalf("FromHandle served %s, which is not a node: %v", a, lerr)
		}
		e := fx.srv.byFS[fs.(*rootfs.FS)]
		if e == nil || e.levelOf(n, fx.ids.Current().NFS) == None {
			t.Fatalf("FromHandle served %s without a grant (path %q)", n.Name, p)
		}
	})
}

// FuzzRPC sends any body to any MOUNT procedure and to NFS procedures over
// one connection, then checks the server still answers MOUNT NULL.
func FuzzRPC(f *testing.F) {
	fx := newFixture(f)
	addr := fx.listen(ipBuild1)
	mnt := func(s string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(s)))
		b = append(b, s...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	f.Add(uint32(100005), uint32(5), []byte{})
	f.Add(uint32(100005), uint32(1), mnt("/shared"))
	f.Add(uint32(100005), uint32(1), mnt("/../../etc"))
	f.Add(uint32(100005), uint32(3), mnt("/shared"))
	f.Add(uint32(100003), uint32(1), mnt("\x01\x00\x00\x00aaaaaaaaaaaaaaaaaaaaaaaa"))
	f.Add(uint32(100003), uint32(3), []byte{0, 0, 0, 28})
	f.Fuzz(func(t *testing.T, prog, proc uint32, body []byte) {
		if prog != 100005 && prog != 100003 {
			prog = 100005
		}
		proc %= 22
		if len(body) > 1<<16 {
			return
		}
		vers := uint32(3)
		r := dialRawNoCleanup(addr)
		if r == nil {
			t.Fatal("dial failed")
		}
		defer r.c.Close()
		r.call(prog, vers, proc, body)
		r2 := dialRawNoCleanup(addr)
		if r2 == nil {
			t.Fatal("dial failed after the call")
		}
		defer r2.c.Close()
		if _, err := r2.call(100005, 3, 0, nil); err != nil {
			t.Fatalf("server stopped answering after prog %d proc %d body %x: %v", prog, proc, body, err)
		}
	})
}
