package selfsign

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

func TestLoadOrGenerateKeepsThePin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c1, err := LoadOrGenerate(dir, []string{"relay.example", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c1.Leaf.DNSNames; len(got) != 1 || got[0] != "relay.example" || len(c1.Leaf.IPAddresses) != 1 {
		t.Errorf("names = %v %v, want relay.example and 127.0.0.1", got, c1.Leaf.IPAddresses)
	}
	st, err := os.Stat(filepath.Join(dir, "relay.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("relay.key mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	c2, err := LoadOrGenerate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p1, p2 := tlspin.Fingerprint(c1.Leaf), tlspin.Fingerprint(c2.Leaf); p1 != p2 {
		t.Errorf("pin after reload = %s, want %s", p2, p1)
	}
	// A corrupt key file is an error, not a silent new certificate.
	os.WriteFile(filepath.Join(dir, "relay.key"), []byte("junk"), 0o600)
	if _, err := LoadOrGenerate(dir, nil); err == nil {
		t.Error("LoadOrGenerate with a corrupt key = nil error")
	}
}
