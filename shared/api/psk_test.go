package api

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestMeshPSKValidate(t *testing.T) {
	k := bytes.Repeat([]byte{7}, PSKSize)
	until := time.Unix(1800000000, 0)
	tests := []struct {
		name string
		p    MeshPSK
		want string
	}{
		{"current only", MeshPSK{Current: k}, ""},
		{"with previous", MeshPSK{Current: k, Previous: k, PreviousUntil: until}, ""},
		{"short current", MeshPSK{Current: k[:31]}, "psk: current is 31 bytes, want 32"},
		{"short previous", MeshPSK{Current: k, Previous: k[:3], PreviousUntil: until}, "psk: previous is 3 bytes, want 32"},
		{"previous without until", MeshPSK{Current: k, Previous: k}, "psk: previous without previous_until"},
		{"zero current", MeshPSK{Current: make([]byte, PSKSize)}, "psk: all zero"},
		{"zero previous", MeshPSK{Current: k, Previous: make([]byte, PSKSize), PreviousUntil: until}, "psk: all zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMeshPSKHidden: the keys never show in logs or %v, only in JSON.
func TestMeshPSKHidden(t *testing.T) {
	cur, prev := bytes.Repeat([]byte{0xa1}, PSKSize), bytes.Repeat([]byte{0xb2}, PSKSize)
	p := MeshPSK{Current: cur, Previous: prev, PreviousUntil: time.Unix(1800000000, 0)}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	log.Info("x", "psk", p, "ptr", &p)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "psk", p)
	out := logs.String() + fmt.Sprint(p) + fmt.Sprintf("%v %+v %s", p, p, &p)
	for _, k := range [][]byte{cur, prev} {
		for _, form := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), fmt.Sprint(k)} {
			if strings.Contains(out, form) {
				t.Fatalf("key shown in %q", out)
			}
		}
	}
	j, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(j), base64.StdEncoding.EncodeToString(cur)) {
		t.Fatalf("json = %s, %v; want the keys", j, err)
	}
}
