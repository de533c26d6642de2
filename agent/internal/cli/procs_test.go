package cli

import "testing"

func TestNodeProcs(t *testing.T) {
	for _, c := range []struct {
		flag   int
		envSet bool
		avail  int
		want   int
	}{
		{0, false, 1, 1},
		{0, false, 2, 1},
		{0, false, 3, 1},
		{0, false, 8, 4},
		{0, false, 64, 32},
		{0, true, 2, 2}, // GOMAXPROCS=2 in the environment
		{0, true, 1, 1},
		{3, false, 2, 3}, // --procs wins over everything
		{3, true, 8, 3},
	} {
		if got := nodeProcs(c.flag, c.envSet, c.avail); got != c.want {
			t.Errorf("nodeProcs(%d, %v, %d) = %d, want %d", c.flag, c.envSet, c.avail, got, c.want)
		}
	}
}

func TestCheckProcs(t *testing.T) {
	if err := checkProcs(-1); err == nil {
		t.Error("--procs -1 accepted")
	}
	for _, n := range []int{0, 1, 16} {
		if err := checkProcs(n); err != nil {
			t.Errorf("--procs %d: %v", n, err)
		}
	}
}
