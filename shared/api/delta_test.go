package api

import (
	"errors"
	"reflect"
	"testing"
)

func TestApplyDelta(t *testing.T) {
	n := func(id, name string) Node { return Node{ID: id, Name: name} }
	f1, f2 := &Filter{PolicyVersion: 1}, &Filter{PolicyVersion: 2}
	base := &Netmap{Version: 4, MeshID: "m", Peers: []Node{n("a", "alpha"), n("c", "charlie"), n("d", "delta")}, Filter: f1}
	tests := []struct {
		name    string
		d       NetmapDelta
		want    *Netmap
		wantErr error
	}{
		{"whole", NetmapDelta{Netmap: Netmap{Version: 9}}, &Netmap{Version: 9, Peers: []Node{}}, nil},
		{"add, change, remove, keep filter",
			NetmapDelta{Netmap: Netmap{Version: 6, MeshID: "m", Peers: []Node{n("b", "bravo"), {ID: "d", Name: "delta", Online: true}}}, DeltaFrom: 4, Removed: []string{"c"}},
			&Netmap{Version: 6, MeshID: "m", Peers: []Node{n("a", "alpha"), n("b", "bravo"), {ID: "d", Name: "delta", Online: true}}, Filter: f1}, nil},
		{"rename reorders, new filter",
			NetmapDelta{Netmap: Netmap{Version: 5, Peers: []Node{n("a", "zulu")}, Filter: f2}, DeltaFrom: 4},
			&Netmap{Version: 5, Peers: []Node{n("c", "charlie"), n("d", "delta"), n("a", "zulu")}, Filter: f2}, nil},
		{"removing an unknown peer", NetmapDelta{Netmap: Netmap{Version: 5}, DeltaFrom: 4, Removed: []string{"x"}},
			&Netmap{Version: 5, Peers: base.Peers, Filter: f1}, nil},
		{"gap", NetmapDelta{Netmap: Netmap{Version: 6}, DeltaFrom: 3}, nil, ErrDeltaBase},
		{"backwards", NetmapDelta{Netmap: Netmap{Version: 3}, DeltaFrom: 4}, nil, ErrDeltaBase},
		{"peer twice", NetmapDelta{Netmap: Netmap{Version: 5, Peers: []Node{n("b", "b"), n("b", "b")}}, DeltaFrom: 4}, nil, ErrDeltaBase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *base
			got, err := ApplyDelta(base, &tt.d)
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ApplyDelta = %+v, %v, want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			if !reflect.DeepEqual(*base, before) || len(base.Peers) != 3 || base.Peers[1].Name != "charlie" {
				t.Fatalf("ApplyDelta modified its base: %+v", base)
			}
		})
	}
	if _, err := ApplyDelta(nil, &NetmapDelta{Netmap: Netmap{Version: 2}, DeltaFrom: 1}); !errors.Is(err, ErrDeltaBase) {
		t.Fatalf("ApplyDelta(nil, delta) = %v, want ErrDeltaBase", err)
	}
}
