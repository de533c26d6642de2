package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// apiError is a 4xx/5xx answer.
type apiError struct {
	status int
	code   string
	msg    string
	cause  error // optional, for errors.Is by the caller
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, api.Error{Error: e.msg, Code: e.code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response","code":"internal"}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// readBody reads a request body of at most api.MaxBodyBytes. Requests that
// carry a body (POST, PUT) must say it is JSON.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		return nil, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nil, errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, "content type %.40q: want application/json", ct)
	}
	if r.ContentLength > api.MaxBodyBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "body larger than %d bytes", api.MaxBodyBytes)
	}
	// The body must arrive within the deadline Server.bounded set. Once
	// it has been read to its end the deadline is lifted (the connection
	// then waits for the answer, which may take a while); a body that
	// stalled keeps it, so the server's drain of the rest stays bounded.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	if err == nil {
		http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "body larger than %d bytes", api.MaxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "read body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes exactly one JSON value into v, refusing unknown fields
// and trailing data.
func decodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON body: data after the object")
	}
	return nil
}

// decodeBody reads and decodes the body into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) ([]byte, *apiError) {
	b, e := readBody(w, r)
	if e != nil {
		return nil, e
	}
	if err := decodeJSON(b, v); err != nil {
		return b, errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	}
	return b, nil
}

// writeParts writes a 200 JSON answer made of pieces, without joining them.
func writeParts(w http.ResponseWriter, parts [][]byte, n int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(n))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for _, p := range parts {
		if len(p) > 0 {
			w.Write(p)
		}
	}
}
