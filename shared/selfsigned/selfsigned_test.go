package selfsigned

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	c, err := Generate(Options{CommonName: "tunnelmesh-test", Hosts: []string{"localhost", "", "127.0.0.1", "::1", "relay.example"}, NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if leaf == nil {
		t.Fatal("Generate left Leaf nil")
	}
	if leaf.Subject.CommonName != "tunnelmesh-test" {
		t.Errorf("CommonName = %q, want tunnelmesh-test", leaf.Subject.CommonName)
	}
	if got := leaf.DNSNames; len(got) != 2 || got[0] != "localhost" || got[1] != "relay.example" {
		t.Errorf("DNSNames = %v, want [localhost relay.example]", got)
	}
	if got := leaf.IPAddresses; len(got) != 2 || !got[0].Equal(net.IPv4(127, 0, 0, 1)) || !got[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1 ::1]", got)
	}
	for _, h := range []string{"localhost", "relay.example", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%q) = %v, want nil", h, err)
		}
	}
	if err := leaf.VerifyHostname("other.example"); err == nil {
		t.Error("VerifyHostname(other.example) = nil, want an error")
	}
	if d := time.Until(leaf.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("NotAfter in %v, want about 24h", d)
	}
	if !leaf.NotBefore.Before(time.Now()) {
		t.Errorf("NotBefore = %v, want before now", leaf.NotBefore)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v, want server auth", leaf.ExtKeyUsage)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	c2, err := Generate(Options{CommonName: "tunnelmesh-test", NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c.Certificate[0], c2.Certificate[0]) || leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) == 0 {
		t.Error("two Generate calls made the same certificate")
	}
}

func TestGenerateRefusesPastNotAfter(t *testing.T) {
	for _, na := range []time.Time{{}, time.Now().Add(-time.Minute)} {
		if _, err := Generate(Options{CommonName: "x", NotAfter: na}); err == nil {
			t.Errorf("Generate(NotAfter %v) = nil error, want an error", na)
		}
	}
}

func TestSaveLoadsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "tls")
	certFile, keyFile := filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	c, err := Generate(Options{CommonName: "tunnelmesh-test", Hosts: []string{"localhost"}, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(c, certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{keyFile: 0o600, certFile: 0o644, dir: 0o700} {
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %v, %v; want %v", file, fi.Mode().Perm(), err, want)
		}
	}
	if _, err := os.Stat(certFile + ".tmp"); err == nil {
		t.Error("temporary file left behind")
	}
	back, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair after Save: %v", err)
	}
	if !bytes.Equal(back.Certificate[0], c.Certificate[0]) {
		t.Error("loaded certificate differs from the saved one")
	}
}

func TestSaveRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	c, err := Generate(Options{CommonName: "x", NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    tls.Certificate
	}{
		{"empty", tls.Certificate{}},
		{"no key", tls.Certificate{Certificate: c.Certificate}},
		{"no certificate", tls.Certificate{PrivateKey: c.PrivateKey}},
		{"unsupported key", tls.Certificate{Certificate: c.Certificate, PrivateKey: "not a key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Save(tt.c, certFile, keyFile); err == nil {
				t.Fatal("Save = nil error, want an error")
			}
			for _, f := range []string{certFile, keyFile} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("Save wrote %s although it failed", f)
				}
			}
		})
	}
	// A directory that cannot be created is an error.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	if err := Save(c, filepath.Join(blocker, "x.crt"), filepath.Join(blocker, "x.key")); err == nil {
		t.Error("Save under a regular file = nil error, want an error")
	}
}
