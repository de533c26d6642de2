package server

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Netmaps are sent gzip-compressed to clients that accept it (Go's HTTP
// client does, transparently). A netmap is mostly the other nodes' entries,
// the same bytes for every watcher, so they are compressed once per
// snapshot: the peers are cut into chunks of gzChunk entries, each chunk
// compressed on its own (a fresh compressor, ended with a sync flush, so
// chunks can be concatenated in any combination: RFC 1951 blocks that do not
// refer back across chunks). Answering a watcher compresses only its own
// pieces (header, its own record, the chunk holding it, minus itself, and
// its filter) and appends the shared chunks; the gzip trailer's CRC-32 is
// computed over the uncompressed pieces.
const gzChunk = 32

// finalBlock is an empty, final, fixed-Huffman DEFLATE block.
var finalBlock = []byte{0x03, 0x00}

var gzHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// gzChunks holds a snapshot's compressed peer chunks.
type gzChunks struct {
	once sync.Once
	// lead[c] is chunk c with a leading comma (for c >= 1); first is
	// chunk 0 without one.
	lead  [][]byte
	first []byte
}

var (
	fastWriters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, flate.BestSpeed); return w }}
	goodWriters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, flate.DefaultCompression); return w }}
)

// deflate appends the sync-flushed raw DEFLATE of the pieces to dst.
func deflate(dst *bytes.Buffer, pool *sync.Pool, pieces ...[]byte) {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	if n == 0 {
		return
	}
	w := pool.Get().(*flate.Writer)
	w.Reset(dst)
	for _, p := range pieces {
		w.Write(p)
	}
	w.Flush()
	pool.Put(w)
}

// chunkSpan returns the bytes of snap.peers covering entries [a, b).
func chunkSpan(snap *snapshot, a, b int) []byte {
	return snap.peers[snap.order[a].start:snap.order[b-1].end]
}

func (g *gzChunks) build(snap *snapshot) {
	g.once.Do(func() {
		n := len(snap.order)
		chunks := (n + gzChunk - 1) / gzChunk
		g.lead = make([][]byte, chunks)
		for c := 0; c < chunks; c++ {
			a, b := c*gzChunk, min((c+1)*gzChunk, n)
			var buf bytes.Buffer
			if c == 0 {
				deflate(&buf, &goodWriters, chunkSpan(snap, a, b))
				g.first = buf.Bytes()
				continue
			}
			deflate(&buf, &goodWriters, comma, chunkSpan(snap, a, b))
			g.lead[c] = buf.Bytes()
		}
	})
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// netmapGzip returns self's netmap as a gzip member: the same document as
// netmapParts, compressed as described above. Policies that hide peers get
// their document compressed whole.
func (s *Server) netmapGzip(snap *snapshot, self *entry) [][]byte {
	parts, _ := s.netmapParts(snap, self)
	pol := s.set.Policy
	if pol != nil && !allVisible(pol, snap, self) {
		return gzipWhole(parts)
	}
	trailer := gzTrailer(parts)

	snap.gz.build(snap)
	pos := self.pos
	selfChunk := pos / gzChunk
	a, b := selfChunk*gzChunk, min((selfChunk+1)*gzChunk, len(snap.order))

	out := make([][]byte, 0, len(snap.gz.lead)+4)
	out = append(out, gzHeader)
	var head bytes.Buffer
	deflate(&head, &fastWriters, snap.head, self.json, peersOpen)
	out = append(out, head.Bytes())
	for c := range snap.gz.lead {
		if c != selfChunk {
			if c == 0 {
				out = append(out, snap.gz.first)
			} else {
				out = append(out, snap.gz.lead[c])
			}
			continue
		}
		// The chunk holding self, without it.
		var before, after []byte
		if pos > a {
			before = snap.peers[snap.order[a].start:snap.order[pos-1].end]
		}
		if pos+1 < b {
			after = snap.peers[snap.order[pos+1].start:snap.order[b-1].end]
		}
		var lead, sep []byte
		if c > 0 && (len(before) > 0 || len(after) > 0) {
			lead = comma
		}
		if len(before) > 0 && len(after) > 0 {
			sep = comma
		}
		var buf bytes.Buffer
		deflate(&buf, &fastWriters, lead, before, sep, after)
		out = append(out, buf.Bytes())
	}
	var tail bytes.Buffer
	deflate(&tail, &fastWriters, peersClose, snap.tail, self.filterJSON(), docClose)
	out = append(out, tail.Bytes(), finalBlock, trailer)
	return out
}

// gzTrailer returns the gzip trailer (CRC-32 and size) of the
// concatenated parts.
func gzTrailer(parts [][]byte) []byte {
	crc := uint32(0)
	size := 0
	for _, p := range parts {
		crc = crc32.Update(crc, crc32.IEEETable, p)
		size += len(p)
	}
	trailer := make([]byte, 8)
	binary.LittleEndian.PutUint32(trailer[:4], crc)
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size))
	return trailer
}

// gzipWhole returns the concatenated parts compressed as one gzip member.
func gzipWhole(parts [][]byte) [][]byte {
	var buf bytes.Buffer
	deflate(&buf, &fastWriters, parts...)
	return [][]byte{gzHeader, buf.Bytes(), finalBlock, gzTrailer(parts)}
}

// writeGzip writes a 200 gzip-encoded JSON answer made of pieces, joined
// first so that the connection gets full-size TLS records and few writes.
func writeGzip(w http.ResponseWriter, parts [][]byte) {
	buf := bodyBufs.Get().(*bytes.Buffer)
	buf.Reset()
	for _, p := range parts {
		buf.Write(p)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	if buf.Cap() <= 4<<20 {
		bodyBufs.Put(buf)
	}
}

var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
