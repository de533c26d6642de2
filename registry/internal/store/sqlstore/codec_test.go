package sqlstore

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestTimeColumns(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   time.Time
		want int64
	}{
		{"zero is 0", time.Time{}, 0},
		{"unix nanoseconds", time.Unix(1700000000, 5), 1700000000000000005},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnixNano(tc.in); got != tc.want {
				t.Fatalf("UnixNano(%v) = %d, want %d", tc.in, got, tc.want)
			}
			if back := Time(tc.want); !back.Equal(tc.in) || back.IsZero() != tc.in.IsZero() {
				t.Fatalf("Time(%d) = %v, want %v", tc.want, back, tc.in)
			}
		})
	}
}

func TestAddrPortText(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   netip.AddrPort
		want string
	}{
		{"none", netip.AddrPort{}, ""},
		{"v4", netip.MustParseAddrPort("192.0.2.1:22"), "192.0.2.1:22"},
		{"v6", netip.MustParseAddrPort("[2001:db8::1]:2222"), "[2001:db8::1]:2222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AddrPortText(tc.in); got != tc.want {
				t.Fatalf("AddrPortText(%v) = %q, want %q", tc.in, got, tc.want)
			}
			if back, err := ParseAddrPortText(tc.want); err != nil || back != tc.in {
				t.Fatalf("ParseAddrPortText(%q) = %v, %v; want %v", tc.want, back, err, tc.in)
			}
		})
	}
	if _, err := ParseAddrPortText("192.0.2.1"); err == nil {
		t.Fatal("ParseAddrPortText accepted an address without a port")
	}
}

// A list column holds "[]" for nil and reads back nil for an empty list.
func TestListColumns(t *testing.T) {
	if got, err := EncodeList[string](nil); err != nil || got != "[]" {
		t.Fatalf("EncodeList(nil) = %q, %v; want []", got, err)
	}
	svcs := []api.Service{{Name: "dns", Protocol: "udp", Port: 53}}
	text, err := EncodeList(svcs)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := decodeList[api.Service](text); err != nil || !reflect.DeepEqual(back, svcs) {
		t.Fatalf("decodeList(%s) = %v, %v; want %v", text, back, err, svcs)
	}
	if back, err := decodeList[string]("[]"); err != nil || back != nil {
		t.Fatalf("decodeList([]) = %#v, %v; want nil", back, err)
	}
	if _, err := decodeList[string]("{"); err == nil {
		t.Fatal("decodeList accepted broken JSON")
	}
}

func TestNewPSKAndMeshID(t *testing.T) {
	a, err := NewPSK()
	if err != nil || len(a) != api.PSKSize {
		t.Fatalf("NewPSK() = %d bytes, %v; want %d", len(a), err, api.PSKSize)
	}
	b, _ := NewPSK()
	if string(a) == string(b) {
		t.Fatal("two PSKs are equal")
	}
	if id := NewMeshID(); len(id) != 16 || id == NewMeshID() {
		t.Fatalf("NewMeshID() = %q; want 16 fresh hex digits", id)
	}
}
