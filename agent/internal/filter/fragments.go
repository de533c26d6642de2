package filter

import "sync"

// fragKey names an IPv4 datagram for reassembly (RFC 791).
type fragKey struct {
	src, dst uint32
	id       uint16
	proto    uint8
}

// fragTable remembers datagrams whose first fragment passed, so their later
// fragments (which carry no ports) may follow. Fragments are rare in the
// mesh (the TUN MTU is below the path MTU), so one lock will do. A later
// fragment that arrives before its first is dropped.
type fragTable struct {
	mu    sync.Mutex // guards the fields below
	m     map[fragKey]int64
	limit int
}

func (t *fragTable) init(limit int) {
	t.m = make(map[fragKey]int64)
	t.limit = limit
}

func (t *fragTable) add(k fragKey, now, exp int64) {
	t.mu.Lock()
	if _, ok := t.m[k]; !ok && len(t.m) >= t.limit {
		for k2, e := range t.m {
			if e <= now {
				delete(t.m, k2)
			}
		}
		if len(t.m) >= t.limit {
			for k2 := range t.m { // drop one at random
				delete(t.m, k2)
				break
			}
		}
	}
	t.m[k] = exp
	t.mu.Unlock()
}

func (t *fragTable) allowed(k fragKey, now int64) bool {
	t.mu.Lock()
	exp, ok := t.m[k]
	if ok && exp <= now {
		delete(t.m, k)
		ok = false
	}
	t.mu.Unlock()
	return ok
}
