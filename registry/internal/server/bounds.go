package server

import (
	"io"
	"net/http"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Connection phases the HTTP server itself does not bound (the coordinator
// sets ReadHeaderTimeout and IdleTimeout on it; a whole-request
// ReadTimeout would end netmap watches halfway).
const (
	// DefaultBodyTimeout bounds the time a client may take to send its
	// request body, counted from the end of the header.
	DefaultBodyTimeout = 30 * time.Second
	// WriteTimeout bounds writing an answer; netmap watches get their
	// longest wait on top.
	WriteTimeout = 30 * time.Second
)

// bounded sets the body and write deadlines of each request. A request
// with a body gets a read deadline BodyTimeout away that is lifted only
// when the body has been read to its end; its answer carries
// "Connection: close" when the handler did not read the body to its end,
// so the server never waits to drain it. WebSocket upgrades (the relay)
// manage their connection's deadlines themselves.
func (s *Server) bounded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		rc := http.NewResponseController(w)
		if r.Header.Get("Upgrade") == "" {
			d := WriteTimeout
			if r.URL.Path == api.PathNetmap {
				d += api.MaxWatchWait
			}
			rc.SetWriteDeadline(now.Add(d))
		} else {
			// An earlier request on this connection left its deadline.
			rc.SetWriteDeadline(time.Time{})
		}
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc.SetReadDeadline(now.Add(s.set.BodyTimeout))
		body := &eofBody{ReadCloser: r.Body}
		r.Body = body
		h.ServeHTTP(&closeUnread{ResponseWriter: w, body: body}, r)
	})
}

// eofBody notes when a request body has been read to its end.
type eofBody struct {
	io.ReadCloser
	eof bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// closeUnread adds "Connection: close" to an answer given before the body
// was read to its end.
type closeUnread struct {
	http.ResponseWriter
	body  *eofBody
	wrote bool
}

func (w *closeUnread) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if !w.body.eof {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeUnread) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *closeUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }
