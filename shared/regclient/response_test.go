package regclient

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDecodeResponse(t *testing.T) {
	type payload struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name     string
		status   int
		body     io.Reader
		limit    int64
		out      bool   // decode into a payload
		wantName string // decoded name
		wantAPI  *APIError
		wantErr  string // substring of a non-API error
	}{
		{name: "ok", status: 200, body: strings.NewReader(`{"name":"a"}`), limit: 100, out: true, wantName: "a"},
		{name: "ok without out", status: 204, body: strings.NewReader(""), limit: 100},
		{name: "ok, bad json", status: 200, body: strings.NewReader(`{"name":`), limit: 100, out: true, wantErr: "decode response: "},
		{name: "ok, over the limit", status: 200, body: strings.NewReader(`{"name":"abcdef"}`), limit: 10, out: true, wantErr: "decode response: "},
		{name: "api error", status: 404, body: strings.NewReader(`{"error":"no such node","code":"not_found"}`), limit: 100,
			wantAPI: &APIError{Status: 404, Body: api.Error{Error: "no such node", Code: api.CodeNotFound}}},
		{name: "text error", status: 502, body: strings.NewReader("  bad gateway\n"), limit: 100,
			wantAPI: &APIError{Status: 502, Body: api.Error{Error: "bad gateway", Code: api.CodeInternal}}},
		{name: "json without message", status: 400, body: strings.NewReader(`{"code":"bad_request"}`), limit: 100,
			wantAPI: &APIError{Status: 400, Body: api.Error{Error: `{"code":"bad_request"}`, Code: api.CodeInternal}}},
		{name: "read error", status: 200, body: failingReader{}, limit: 100, out: true, wantErr: "read response: connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(tt.body)}
			var p payload
			var out any
			if tt.out {
				out = &p
			}
			err := DecodeResponse(resp, tt.limit, out)
			var ae *APIError
			switch {
			case tt.wantAPI != nil:
				if !errors.As(err, &ae) || *ae != *tt.wantAPI {
					t.Errorf("DecodeResponse = %v, want %+v", err, tt.wantAPI)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.As(err, &ae) {
					t.Errorf("DecodeResponse = %v, want an error containing %q", err, tt.wantErr)
				}
			default:
				if err != nil || p.Name != tt.wantName {
					t.Errorf("DecodeResponse = %v, name %q; want nil, %q", err, p.Name, tt.wantName)
				}
			}
		})
	}
}
