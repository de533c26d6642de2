package nodekey

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// libsodium test/default/ed25519_convert.c: seed, and the X25519 keys
// crypto_sign_ed25519_{pk,sk}_to_curve25519 return for it.
const (
	sodiumSeed = "421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee"
	sodiumPK   = "f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50"
	sodiumSK   = "8052030376d47112be7f73ed7a019293dd12ad910b654455798b4667d73de166"
)

func TestX25519LibsodiumVector(t *testing.T) {
	seed, _ := hex.DecodeString(sodiumSeed)
	k, err := FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	sk := k.X25519()
	if got := hex.EncodeToString(sk[:]); got != sodiumSK {
		t.Errorf("X25519 private = %s, want %s", got, sodiumSK)
	}
	pk, err := k.Public().X25519()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(pk[:]); got != sodiumPK {
		t.Errorf("X25519 public = %s, want %s", got, sodiumPK)
	}
}

// The derived private key must match the derived public key for random keys:
// X25519(sk, basepoint) == pk_to_curve25519(ed25519 pk).
func TestX25519PairsAgree(t *testing.T) {
	for i := 0; i < 50; i++ {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		sk := k.X25519()
		priv, err := ecdh.X25519().NewPrivateKey(sk[:])
		if err != nil {
			t.Fatal(err)
		}
		pk, err := k.Public().X25519()
		if err != nil {
			t.Fatal(err)
		}
		if got := priv.PublicKey().Bytes(); string(got) != string(pk[:]) {
			t.Fatalf("key %d: X25519(sk)*G = %x, converted pk = %x", i, got, pk)
		}
	}
}

func TestPublicKeyRejectsBadPoints(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"identity (small order)", "0100000000000000000000000000000000000000000000000000000000000000"},
		{"order-2 point", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"not on curve", "0200000000000000000000000000000000000000000000000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p PublicKey
			b, _ := hex.DecodeString(tt.hex)
			copy(p[:], b)
			if _, err := p.X25519(); !errors.Is(err, ErrInvalidPublicKey) {
				t.Errorf("X25519(%s) err = %v, want ErrInvalidPublicKey", tt.hex, err)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "id_ed25519")
	k, created, err := LoadOrGenerate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrGenerate = created %v, err %v; want created", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %o, want 600", st.Mode().Perm())
	}
	k2, created, err := LoadOrGenerate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrGenerate = created %v, err %v", created, err)
	}
	if k.Public() != k2.Public() {
		t.Error("reloaded key differs")
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("key file is not OpenSSH format: %.40q", b)
	}
}

func TestLoadErrors(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed, _ := Generate()
	marshal := func(key any, pass string) []byte {
		var blk *pem.Block
		var err error
		if pass != "" {
			blk, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(pass))
		} else {
			blk, err = ssh.MarshalPrivateKey(key, "")
		}
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(blk)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"rsa", marshal(rsaKey, ""), ErrUnsupportedKeyType},
		{"ecdsa", marshal(ecKey, ""), ErrUnsupportedKeyType},
		{"passphrase", marshal(ed.Ed25519(), "secret"), ErrPassphraseProtected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte("garbage")); err == nil {
		t.Error("Parse(garbage) succeeded")
	}
}

func TestPublicKeyText(t *testing.T) {
	k, _ := Generate()
	p := k.Public()
	s := p.String()
	if !strings.HasPrefix(s, "ssh-ed25519 AAAA") {
		t.Fatalf("String() = %q", s)
	}
	got, err := ParsePublicKey(s + " some comment")
	if err != nil || got != p {
		t.Fatalf("ParsePublicKey(String()) = %v, %v", got, err)
	}
	if !strings.HasPrefix(p.Fingerprint(), "SHA256:") || len(p.ShortID()) != 12 {
		t.Errorf("Fingerprint %q ShortID %q", p.Fingerprint(), p.ShortID())
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rp, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	if _, err := ParsePublicKey(string(ssh.MarshalAuthorizedKey(rp))); !errors.Is(err, ErrUnsupportedKeyType) {
		t.Errorf("ParsePublicKey(rsa) = %v, want ErrUnsupportedKeyType", err)
	}
	msg := []byte("hello")
	if !p.Verify(msg, k.Sign(msg)) {
		t.Error("signature does not verify")
	}
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := Generate()
	f.Add(k.Public().String())
	f.Add("ssh-ed25519 AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		if _, err := p.X25519(); err != nil {
			t.Fatalf("ParsePublicKey accepted a key X25519 rejects: %v", err)
		}
		if q, err := ParsePublicKey(p.String()); err != nil || q != p {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
