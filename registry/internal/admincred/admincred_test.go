package admincred

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(Path(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	c2, err := LoadOrCreate(dir)
	if err != nil || c2 != c1 {
		t.Fatalf("second LoadOrCreate = %q, %v; want the same credential", c2, err)
	}
	other, _ := LoadOrCreate(t.TempDir())
	if other == c1 {
		t.Fatal("two data directories got the same credential")
	}
	chk := NewChecker(c1)
	for _, tt := range []struct {
		in   string
		want bool
	}{{c1, true}, {c1 + "x", false}, {c1[:len(c1)-1], false}, {"", false}, {other, false}} {
		if got := chk.Check(tt.in); got != tt.want {
			t.Errorf("Check(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	os.WriteFile(Path(dir), []byte("short\n"), 0o600)
	if _, err := Load(dir); err == nil {
		t.Fatal("Load accepted a truncated credential")
	}
}
