package replay

import "testing"

func TestFilter(t *testing.T) {
	const limit = ^uint64(0) - 8192
	type step struct {
		counter uint64
		want    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}, {3, true}}},
		{"duplicate", []step{{0, true}, {0, false}, {1, true}, {1, false}}},
		{"reordered", []step{{5, true}, {3, true}, {4, true}, {3, false}, {5, false}, {0, true}}},
		{"window edge", []step{{WindowSize + 10, true}, {10, false}, {11, true}, {11, false}}},
		{"far jump clears", []step{{1, true}, {1 << 20, true}, {1, false}, {1<<20 - 1, true}, {1 << 20, false}}},
		{"limit", []step{{limit - 1, true}, {limit, false}, {limit + 1, false}}},
		{"block wrap", []step{{63, true}, {64, true}, {127, true}, {128 * 64, true}, {64, false}, {128*64 - 1, true}, {128*64 - 1, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Filter
			for i, s := range tt.steps {
				if got := f.Accept(s.counter, limit); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.counter, got, s.want)
				}
			}
		})
	}
}

// TestFilterModel checks the ring against a plain set-based model.
func TestFilterModel(t *testing.T) {
	var f Filter
	seen := map[uint64]bool{}
	var highest uint64
	var any bool
	x := uint64(12345)
	for i := 0; i < 200000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		var c uint64
		if any {
			c = highest + 20 - x%(WindowSize+200)
			if c > highest+20 {
				c = x % 50
			}
		}
		if x%1000 == 0 {
			c = highest + x%20000
		}
		want := !seen[c] && (!any || c > highest || highest-c < WindowSize)
		got := f.Accept(c, ^uint64(0))
		if got != want {
			t.Fatalf("iteration %d: Accept(%d) = %v, want %v (highest %d)", i, c, got, want, highest)
		}
		if got {
			seen[c] = true
			if !any || c > highest {
				highest = c
				any = true
			}
		}
	}
}

func TestFilterNoAlloc(t *testing.T) {
	var f Filter
	n := uint64(0)
	if a := testing.AllocsPerRun(1000, func() { f.Accept(n, ^uint64(0)); n++ }); a != 0 {
		t.Fatalf("allocs = %v, want 0", a)
	}
}

func FuzzFilter(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{255, 0, 255, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fl Filter
		seen := map[uint64]bool{}
		for i := 0; i+1 < len(b); i += 2 {
			c := uint64(b[i])<<8 | uint64(b[i+1])
			if fl.Accept(c, ^uint64(0)) {
				if seen[c] {
					t.Fatalf("counter %d accepted twice", c)
				}
				seen[c] = true
			}
		}
	})
}
