package wire

import (
	"bytes"
	"testing"
)

func addSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0})
	f.Add((&Initiation{Sender: 1}).MarshalTo(make([]byte, InitiationSize)))
	f.Add((&Response{Sender: 1, Receiver: 2}).MarshalTo(make([]byte, ResponseSize)))
	f.Add((&CookieReply{Receiver: 3}).MarshalTo(make([]byte, CookieReplySize)))
	tr := make([]byte, TransportMinSize)
	PutTransportHeader(tr, 4, 5)
	f.Add(tr)
}

// FuzzParse runs every parser on the same input: none may panic, and whatever
// parses must marshal back to the same bytes.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Type(b)
		if m, err := ParseInitiation(b); err == nil {
			if out := m.MarshalTo(make([]byte, InitiationSize)); !bytes.Equal(out, b) {
				t.Fatalf("initiation round trip: %x != %x", out, b)
			}
		}
		if m, err := ParseResponse(b); err == nil {
			if out := m.MarshalTo(make([]byte, ResponseSize)); !bytes.Equal(out, b) {
				t.Fatalf("response round trip: %x != %x", out, b)
			}
		}
		if m, err := ParseCookieReply(b); err == nil {
			if out := m.MarshalTo(make([]byte, CookieReplySize)); !bytes.Equal(out, b) {
				t.Fatalf("cookie reply round trip: %x != %x", out, b)
			}
		}
		if r, c, err := ParseTransportHeader(b); err == nil {
			out := make([]byte, TransportHeaderSize)
			PutTransportHeader(out, r, c)
			if !bytes.Equal(out, b[:TransportHeaderSize]) {
				t.Fatalf("transport header round trip: %x != %x", out, b[:16])
			}
		}
	})
}
