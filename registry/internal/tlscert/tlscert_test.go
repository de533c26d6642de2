package tlscert

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSelfSignedIsKept(t *testing.T) {
	dir := t.TempDir()
	c1, pin1, err := Load(dir, "", "", []string{"coord.example.com", "192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Leaf.VerifyHostname("coord.example.com") != nil || c1.Leaf.VerifyHostname("192.0.2.10") != nil || c1.Leaf.VerifyHostname("localhost") != nil {
		t.Fatalf("certificate names = %v %v", c1.Leaf.DNSNames, c1.Leaf.IPAddresses)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	_, pin2, err := Load(dir, "", "", nil)
	if err != nil || pin2 != pin1 {
		t.Fatalf("second Load pin = %q, %v; want %q", pin2, err, pin1)
	}
	if p, err := PinFromFile(filepath.Join(dir, CertFile)); err != nil || p != pin1 {
		t.Fatalf("PinFromFile = %q, %v; want %q", p, err, pin1)
	}
}

func TestConfiguredFiles(t *testing.T) {
	gen := t.TempDir()
	_, pin, err := Load(gen, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := Paths(gen, "", "")
	other := t.TempDir()
	_, pin2, err := Load(other, cert, key, nil)
	if err != nil || pin2 != pin {
		t.Fatalf("Load(configured) pin = %q, %v; want %q", pin2, err, pin)
	}
	if _, err := os.Stat(filepath.Join(other, CertFile)); err == nil {
		t.Fatal("a certificate was generated although one is configured")
	}
	// A key that does not match the certificate is refused.
	_, _, _ = Load(other, "", "", nil)
	_, otherKey := Paths(other, "", "")
	if _, _, err := Load(t.TempDir(), cert, otherKey, nil); err == nil {
		t.Fatal("mismatched certificate and key accepted")
	}
	if _, _, err := Load(t.TempDir(), filepath.Join(gen, "missing.crt"), key, nil); err == nil {
		t.Fatal("missing certificate accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := PinFromFile(bad); err == nil {
		t.Fatal("PinFromFile accepted garbage")
	}
}
