package api

import (
	"fmt"
	"log/slog"
	"time"
)

// MeshPSK is the mesh pre-shared key as the netmap carries it. The
// registry replaces it when a node is removed; nodes then initiate
// handshakes with Current and, until PreviousUntil, still accept
// initiations made with Previous (from peers that have not seen the new
// netmap yet), so no tunnel drops. Its log and string forms hide the keys.
type MeshPSK struct {
	Current       []byte    `json:"current"`            // PSKSize bytes
	Previous      []byte    `json:"previous,omitempty"` // PSKSize bytes, or none
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// Validate checks the key sizes.
func (p *MeshPSK) Validate() error {
	if len(p.Current) != PSKSize {
		return fmt.Errorf("psk: current is %d bytes, want %d", len(p.Current), PSKSize)
	}
	if len(p.Previous) != 0 && len(p.Previous) != PSKSize {
		return fmt.Errorf("psk: previous is %d bytes, want %d", len(p.Previous), PSKSize)
	}
	if allZero(p.Current) || (len(p.Previous) != 0 && allZero(p.Previous)) {
		return fmt.Errorf("psk: all zero")
	}
	if len(p.Previous) != 0 && p.PreviousUntil.IsZero() {
		return fmt.Errorf("psk: previous without previous_until")
	}
	return nil
}

// String hides the keys.
func (p MeshPSK) String() string { return "MeshPSK{[redacted]}" }

// LogValue hides the keys from log/slog.
func (p MeshPSK) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("previous", len(p.Previous) != 0), slog.Time("previous_until", p.PreviousUntil))
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
