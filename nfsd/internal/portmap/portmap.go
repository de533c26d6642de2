// Package portmap answers the ONC RPC port mapper (program 100000) for
// nfsd's two programs, so that clients that ask port 111 where NFS and
// MOUNT are (showmount, libnfs without port options, a kernel mount
// without port= and mountport=) learn that both are on nfsd's port.
//
// It is not a general rpcbind: nothing registers with it, and it knows only
// NFS v3 (100003) and MOUNT v1-v3 (100005) over TCP. It speaks portmap v2
// (NULL, GETPORT, DUMP) and rpcbind v3/v4 (NULL, GETADDR), over TCP (record
// marking) and UDP. Calls from sources the allow function refuses (not a
// mesh node) get no answer: TCP connections are closed at accept, UDP
// datagrams are dropped.
package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Program numbers (RFC 1833, RFC 1813).
const (
	Program      = 100000
	programNFS   = 100003
	programMount = 100005

	protoTCP = 6

	procNull    = 0
	procGetport = 3 // v2 GETPORT; v3/v4 GETADDR has the same number
	procDump    = 4 // v2 DUMP

	acceptSuccess      = 0
	acceptProgUnavail  = 1
	acceptProgMismatch = 2
	acceptProcUnavail  = 3
	acceptGarbageArgs  = 4
)

// maxCall bounds a call's size: port mapper calls are tiny.
const maxCall = 1024

// errShort is returned for a truncated call.
var errShort = errors.New("truncated rpc call")

// Mapper answers for nfsd listening on Addr.
type Mapper struct {
	Addr netip.AddrPort
}

// known reports whether nfsd serves prog at vers over TCP.
func known(prog, vers uint32) bool {
	switch prog {
	case programNFS:
		return vers == 3
	case programMount:
		return vers >= 1 && vers <= 3
	}
	return false
}

type reader struct {
	b []byte
}

func (r *reader) u32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errShort
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

func (r *reader) opaque(max int) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if int(n) > max || int(n) > len(r.b) {
		return nil, errShort
	}
	v := r.b[:n]
	pad := (int(n) + 3) &^ 3
	if pad > len(r.b) {
		return nil, errShort
	}
	r.b = r.b[pad:]
	return v, nil
}

// Answer returns the reply to one call message (without TCP record
// marking), or an error when the message is not a call worth answering.
func (m *Mapper) Answer(call []byte) ([]byte, error) {
	if len(call) > maxCall {
		return nil, fmt.Errorf("portmap call of %d bytes: too large", len(call))
	}
	r := &reader{b: call}
	var h [6]uint32 // xid, msg type, rpc version, program, version, procedure
	for i := range h {
		v, err := r.u32()
		if err != nil {
			return nil, err
		}
		h[i] = v
	}
	xid, mtype, rpcvers, prog, vers, proc := h[0], h[1], h[2], h[3], h[4], h[5]
	if mtype != 0 || rpcvers != 2 {
		return nil, errors.New("not an ONC RPC v2 call")
	}
	for range 2 { // credential, verifier
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		if _, err := r.opaque(400); err != nil {
			return nil, err
		}
	}
	reply := func(stat uint32, body ...uint32) []byte {
		b := make([]byte, 0, 24+4*len(body))
		for _, v := range []uint32{xid, 1, 0, 0, 0, stat} {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		for _, v := range body {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	switch {
	case prog != Program:
		return reply(acceptProgUnavail), nil
	case vers < 2 || vers > 4:
		return reply(acceptProgMismatch, 2, 4), nil
	case proc == procNull:
		return reply(acceptSuccess), nil
	case vers == 2 && proc == procGetport:
		var a [4]uint32 // prog, vers, prot, port
		for i := range a {
			v, err := r.u32()
			if err != nil {
				return reply(acceptGarbageArgs), nil
			}
			a[i] = v
		}
		port := uint32(0)
		if a[2] == protoTCP && known(a[0], a[1]) {
			port = uint32(m.Addr.Port())
		}
		return reply(acceptSuccess, port), nil
	case vers == 2 && proc == procDump:
		var body []uint32
		for _, pv := range [][2]uint32{{programNFS, 3}, {programMount, 1}, {programMount, 2}, {programMount, 3}} {
			body = append(body, 1, pv[0], pv[1], protoTCP, uint32(m.Addr.Port()))
		}
		return reply(acceptSuccess, append(body, 0)...), nil
	case proc == procGetport: // v3/v4 GETADDR
		p, err1 := r.u32()
		v, err2 := r.u32()
		netid, err3 := r.opaque(64)
		_, err4 := r.opaque(128) // addr
		_, err5 := r.opaque(128) // owner
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return reply(acceptGarbageArgs), nil
		}
		uaddr := ""
		if (string(netid) == "tcp" && m.Addr.Addr().Is4() || string(netid) == "tcp6" && m.Addr.Addr().Is6()) && known(p, v) {
			uaddr = UniversalAddr(m.Addr)
		}
		b := reply(acceptSuccess, uint32(len(uaddr)))
		b = append(b, uaddr...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b, nil
	}
	return reply(acceptProcUnavail), nil
}

// UniversalAddr is RFC 1833's address format: "h1.h2.h3.h4.p1.p2".
func UniversalAddr(a netip.AddrPort) string {
	p := a.Port()
	return a.Addr().String() + "." + strconv.Itoa(int(p>>8)) + "." + strconv.Itoa(int(p&0xff))
}
