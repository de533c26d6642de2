package bufpool

import (
	"fmt"
	"testing"
)

func TestGetSizes(t *testing.T) {
	p := New(100, 1000)
	tests := []struct {
		n, wantCap int
	}{
		{0, 100},
		{1, 100},
		{100, 100},
		{101, 1000},
		{1000, 1000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			b := p.Get(tt.n)
			if len(*b) != tt.n || cap(*b) != tt.wantCap {
				t.Errorf("Get(%d) = len %d cap %d, want len %d cap %d", tt.n, len(*b), cap(*b), tt.n, tt.wantCap)
			}
			p.Put(b)
		})
	}
}

func TestGetTooLargePanics(t *testing.T) {
	p := New(100, 1000)
	defer func() {
		if recover() == nil {
			t.Error("Get(1001) did not panic")
		}
	}()
	p.Get(1001)
}

// A buffer put back is handed out again, at the length asked for, by the
// pool of its size.
func TestPutReuses(t *testing.T) {
	p := New(100, 1000)
	for _, n := range []int{10, 500} {
		seen := map[*[]byte]bool{}
		reused := false
		// sync.Pool may drop items (at a GC, or at random under the race
		// detector), so try a few times.
		for i := 0; i < 50 && !reused; i++ {
			b := p.Get(n - i%2)
			if len(*b) != n-i%2 {
				t.Fatalf("Get(%d) len = %d", n-i%2, len(*b))
			}
			reused = seen[b]
			seen[b] = true
			p.Put(b)
		}
		if !reused {
			t.Errorf("no buffer of %d bytes was reused in 50 Get/Put", n)
		}
	}
}

func TestNewRefusesBadSizes(t *testing.T) {
	for _, s := range [][2]int{{0, 10}, {-1, 10}, {10, 10}, {10, 5}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d, %d) did not panic", s[0], s[1])
				}
			}()
			New(s[0], s[1])
		}()
	}
}

func TestGetPutDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	p := New(100, 1000)
	p.Put(p.Get(10))
	p.Put(p.Get(500))
	allocs := testing.AllocsPerRun(1000, func() {
		p.Put(p.Get(10))
		p.Put(p.Get(500))
	})
	if allocs > 0 {
		t.Errorf("Get+Put allocs = %v, want 0", allocs)
	}
}

func BenchmarkGetPut(b *testing.B) {
	p := New(2048, 65536)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Put(p.Get(1400))
	}
}
