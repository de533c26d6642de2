package server

import (
	"encoding/binary"

	"github.com/prometheus/client_golang/prometheus"
)

// The wiretap counts operations and their results from the RPC records
// going through a connection, since go-nfs has no hook for them: requests
// are read from the bytes go-nfs reads, replies from the bytes it writes.
// go-nfs answers a connection's requests one at a time, in order, so the
// n-th reply answers the n-th request.

// recordScanner splits a byte stream of RPC records (RFC 5531 record
// marking) and hands the first bytes of each record to onRecord. It keeps
// no more than one record's prefix and does not allocate.
type recordScanner struct {
	mark     [4]byte
	markN    int
	prefix   [28]byte
	prefixN  int
	want     int // prefix bytes to collect from this record
	left     int // bytes of this record not yet seen
	onRecord func(prefix []byte)
}

func (s *recordScanner) feed(p []byte) {
	for len(p) > 0 {
		if s.left == 0 && s.prefixN == s.want {
			n := copy(s.mark[s.markN:], p)
			s.markN += n
			p = p[n:]
			if s.markN < len(s.mark) {
				return
			}
			s.markN = 0
			s.left = int(binary.BigEndian.Uint32(s.mark[:]) &^ (1 << 31))
			s.want, s.prefixN = min(len(s.prefix), s.left), 0
			if s.want == 0 {
				s.onRecord(nil)
			}
			continue
		}
		if s.prefixN < s.want {
			n := copy(s.prefix[s.prefixN:s.want], p)
			s.prefixN += n
			s.left -= n
			p = p[n:]
			if s.prefixN == s.want {
				s.onRecord(s.prefix[:s.want])
			}
			continue
		}
		n := min(s.left, len(p))
		s.left -= n
		p = p[n:]
	}
}

// op identifies a request: program (0 NFS, 1 MOUNT, 2 other) and procedure.
type op struct{ prog, proc uint8 }

const (
	progNFS = iota
	progMount
	progOther
)

var nfsProcs = [...]string{"null", "getattr", "setattr", "lookup", "access", "readlink", "read", "write",
	"create", "mkdir", "symlink", "mknod", "remove", "rmdir", "rename", "link", "readdir", "readdirplus",
	"fsstat", "fsinfo", "pathconf", "commit"}

var mountProcs = [...]string{"null", "mnt", "dump", "umnt", "umntall", "export"}

func (o op) String() string {
	switch {
	case o.prog == progNFS && int(o.proc) < len(nfsProcs):
		return "nfs." + nfsProcs[o.proc]
	case o.prog == progMount && int(o.proc) < len(mountProcs):
		return "mount." + mountProcs[o.proc]
	}
	return "other"
}

// hasStatus reports whether the op's successful result starts with a
// status word (nfsstat3, or mountstat3 for MNT).
func (o op) hasStatus() bool {
	return o.prog == progNFS && o.proc != 0 && int(o.proc) < len(nfsProcs) || o.prog == progMount && o.proc == 1
}

// statusNames names the nfsstat3/mountstat3 codes worth telling apart.
var statusNames = map[uint32]string{0: "ok", 1: "perm", 2: "noent", 5: "io", 13: "acces", 17: "exist",
	20: "notdir", 21: "isdir", 22: "inval", 28: "nospc", 30: "rofs", 39: "notempty", 63: "nametoolong",
	70: "stale", 10001: "badhandle", 10004: "notsupp", 10006: "serverfault"}

// opsCounters holds every (op, result) counter, made once.
var opsCounters = func() map[string]map[string]prometheus.Counter {
	m := map[string]map[string]prometheus.Counter{}
	add := func(name string) {
		m[name] = map[string]prometheus.Counter{}
		for _, r := range append([]string{"error", "rpc_error", "denied"}, mapValues(statusNames)...) {
			m[name][r] = ops.WithLabelValues(name, r)
		}
	}
	for i := range nfsProcs {
		add(op{progNFS, uint8(i)}.String())
	}
	for i := range mountProcs {
		add(op{progMount, uint8(i)}.String())
	}
	add("other")
	return m
}()

func mapValues(m map[uint32]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// tap is one connection's wiretap.
type tap struct {
	in, out recordScanner
	pending chan op // requests read, not yet answered
}

func newTap() *tap {
	t := &tap{pending: make(chan op, 256)}
	t.in.onRecord = t.request
	t.out.onRecord = t.reply
	return t
}

func (t *tap) request(p []byte) {
	o := op{prog: progOther}
	if len(p) >= 24 {
		prog, proc := binary.BigEndian.Uint32(p[12:]), binary.BigEndian.Uint32(p[20:])
		switch {
		case prog == 100003 && proc < uint32(len(nfsProcs)):
			o = op{progNFS, uint8(proc)}
		case prog == 100005 && proc < uint32(len(mountProcs)):
			o = op{progMount, uint8(proc)}
		}
	}
	select {
	case t.pending <- o:
	default: // more requests in flight than go-nfs ever reads ahead: not counted
	}
}

func (t *tap) reply(p []byte) {
	o := op{prog: progOther}
	select {
	case o = <-t.pending:
	default:
	}
	result := "rpc_error"
	switch {
	case len(p) >= 12 && binary.BigEndian.Uint32(p[8:]) != 0:
		result = "denied"
	case len(p) >= 24 && binary.BigEndian.Uint32(p[16:]) == 0 && binary.BigEndian.Uint32(p[20:]) == 0:
		result = "ok"
		if o.hasStatus() && len(p) >= 28 {
			st := binary.BigEndian.Uint32(p[24:])
			if result = statusNames[st]; result == "" {
				result = "error"
			}
		}
	}
	opsCounters[o.String()][result].Inc()
}
