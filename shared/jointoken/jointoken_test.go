package jointoken

import (
	"errors"
	"strings"
	"testing"
)

const pin = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"

func TestRoundTrip(t *testing.T) {
	tok, err := New(pin)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if !strings.HasPrefix(s, "tm1.") {
		t.Fatalf("String() = %q", s)
	}
	got, err := Parse(" " + s + "\n")
	if err != nil || got != tok {
		t.Fatalf("Parse(String()) = %+v, %v; want %+v", got, err, tok)
	}
	other, _ := New(pin)
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Error("two tokens share an id or secret")
	}
}

func TestParseErrors(t *testing.T) {
	good, _ := New(pin)
	tests := []struct {
		name, in, wantMsg string
	}{
		{"empty", "", "want tm1"},
		{"wrong prefix", "tm2." + good.ID + "." + good.Secret + "." + pin, "want tm1"},
		{"three parts", "tm1." + good.ID + "." + good.Secret, "want tm1"},
		{"bad id", "tm1.short." + good.Secret + "." + pin, "bad id"},
		{"bad secret", "tm1." + good.ID + ".short." + pin, "bad secret"},
		{"bad pin", "tm1." + good.ID + "." + good.Secret + ".short", "bad certificate pin"},
		{"too long", strings.Repeat("a", 300), "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Parse(%q) = %v, want ErrMalformed with %q", tt.in, err, tt.wantMsg)
			}
			if err != nil && strings.Contains(err.Error(), good.Secret) {
				t.Errorf("error echoes the secret: %v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	good, _ := New(pin)
	f.Add(good.String())
	f.Add("tm1...")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}
