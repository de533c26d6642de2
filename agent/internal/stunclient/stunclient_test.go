package stunclient

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// response builds a Binding success for id with the given attributes (as
// the registry's responder writes them).
func response(id TxID, attrs ...[]byte) []byte {
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint16(b[0:], BindingSuccess)
	binary.BigEndian.PutUint32(b[4:], MagicCookie)
	copy(b[8:], id[:])
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-HeaderSize))
	return b
}

func addrAttr(typ uint16, ap netip.AddrPort, id TxID, xor bool) []byte {
	ip := ap.Addr().AsSlice()
	fam := byte(familyIPv4)
	if len(ip) == 16 {
		fam = familyIPv6
	}
	port := ap.Port()
	if xor {
		key := make([]byte, 16)
		binary.BigEndian.PutUint32(key, MagicCookie)
		copy(key[4:], id[:])
		port ^= uint16(MagicCookie >> 16)
		for i := range ip {
			ip[i] ^= key[i]
		}
	}
	v := append([]byte{0, fam, byte(port >> 8), byte(port)}, ip...)
	h := []byte{byte(typ >> 8), byte(typ), byte(len(v) >> 8), byte(len(v))}
	return append(h, v...)
}

func TestParse(t *testing.T) {
	id := TxID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	v4 := netip.MustParseAddrPort("203.0.113.7:41641")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:51820")
	software := []byte{0x80, 0x22, 0, 5, 't', 'e', 's', 't', '!', 0, 0, 0}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    netip.AddrPort
		wantErr error
	}{
		{"xor v4", response(id, addrAttr(AttrXORMapped, v4, id, true)), v4, nil},
		{"xor v6", response(id, addrAttr(AttrXORMapped, v6, id, true)), v6, nil},
		{"mapped only", response(id, addrAttr(AttrMappedAddress, v4, id, false)), v4, nil},
		{"xor wins", response(id, addrAttr(AttrMappedAddress, netip.MustParseAddrPort("192.0.2.1:1"), id, false), software, addrAttr(AttrXORMapped, v4, id, true)), v4, nil},
		{"no address", response(id, software), netip.AddrPort{}, ErrNoAddress},
		{"other tx", response(TxID{9}, addrAttr(AttrXORMapped, v4, TxID{9}, true)), netip.AddrPort{}, ErrOtherTxID},
		{"request", Request(id), netip.AddrPort{}, ErrNotSTUN},
		{"short", []byte{1, 1, 0}, netip.AddrPort{}, ErrNotSTUN},
		{"length past end", func() []byte { b := response(id); b[3] = 8; return b }(), netip.AddrPort{}, ErrMalformed},
		{"truncated attr", response(id, []byte{0, 0x20, 0, 8, 0, 1, 0, 0}), netip.AddrPort{}, ErrMalformed},
		{"bad family", response(id, []byte{0, 0x20, 0, 8, 0, 9, 0, 1, 1, 2, 3, 4}), netip.AddrPort{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, id)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("Parse = %v, %v, want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRequestGolden(t *testing.T) {
	id := TxID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	want := []byte{0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if got := Request(id); string(got) != string(want) {
		t.Fatalf("Request = %x, want %x", got, want)
	}
}

func FuzzParse(f *testing.F) {
	id := TxID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	f.Add(response(id, addrAttr(AttrXORMapped, netip.MustParseAddrPort("203.0.113.7:41641"), id, true)))
	f.Add(response(id, addrAttr(AttrMappedAddress, netip.MustParseAddrPort("[2001:db8::1]:5"), id, false)))
	f.Add(Request(id))
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := Parse(b, id)
		if err == nil && (!ap.IsValid() || ap.Port() == 0) {
			t.Fatalf("Parse(%x) = %v without error", b, ap)
		}
	})
}
