package sqlstore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// ErrNoMesh is returned by statements that need the mesh row before
// InitMesh created it.
var ErrNoMesh = errors.New("mesh not initialised")

// UnixNano is t's column value: unix nanoseconds, 0 for the zero time.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time is the inverse of UnixNano: the zero time for 0.
func Time(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// AddrPortText is a's column value: its text, "" when a is not valid.
func AddrPortText(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ParseAddrPortText is the inverse of AddrPortText.
func ParseAddrPortText(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	return netip.ParseAddrPort(s)
}

// EncodeList is a list column's value: the JSON array of s, "[]" when s
// is nil.
func EncodeList[T any](s []T) (string, error) {
	if s == nil {
		s = []T{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeList is the inverse of EncodeList, with nil for an empty list.
func decodeList[T any](text string) ([]T, error) {
	var s []T
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, nil
	}
	return s, nil
}

// HostKeyBytes is an SSH host key's column value: nil when there is none.
func HostKeyBytes(k *nodekey.PublicKey) []byte {
	if k == nil {
		return nil
	}
	return k[:]
}

// NewPSK returns a fresh mesh pre-shared key.
func NewPSK() ([]byte, error) {
	psk := make([]byte, api.PSKSize)
	if _, err := rand.Read(psk); err != nil {
		return nil, fmt.Errorf("new psk: %w", err)
	}
	return psk, nil
}

// NewMeshID returns a fresh mesh ID (16 hex digits).
func NewMeshID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
