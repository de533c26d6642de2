package main

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestServeAndGet(t *testing.T) {
	srv := httptest.NewServer(handler("web"))
	defer srv.Close()
	for _, tc := range []struct {
		name, path string
		want       string // body; "" with wantErr
		wantErr    string
	}{
		{"hello", "/", "hello from web\n", ""},
		{"bytes", "/bytes?n=3", "\x00\x00\x00", ""},
		{"bad count", "/bytes?n=x", "", "400 Bad Request"},
		{"unknown path", "/nope", "", "404 Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := fetch(srv.URL+tc.path, 5*time.Second, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("fetch(%s) = %v, want %q", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil || out.String() != tc.want {
				t.Errorf("fetch(%s) = %q, %v; want %q", tc.path, out.String(), err, tc.want)
			}
		})
	}
	// A large body is counted whole.
	var out bytes.Buffer
	if err := fetch(srv.URL+"/bytes?n=3000000", 30*time.Second, &out); err != nil || out.Len() != 3000000 {
		t.Errorf("fetch(/bytes?n=3000000) = %d bytes, %v", out.Len(), err)
	}
}
