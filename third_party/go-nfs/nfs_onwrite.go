package nfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/go-git/go-billy/v5"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// writeStability is the level of durability requested with the write
type writeStability uint32

const (
	unstable writeStability = 0
	dataSync writeStability = 1
	fileSync writeStability = 2
)

// writeArgs is WRITE3args up to the data, which readWriteData reads.
type writeArgs struct {
	Handle []byte
	Offset uint64
	Count  uint32
	How    uint32
}

// readWriteData reads the data (opaque<>) that ends WRITE3args from body
// into a buffer of the pool, and returns the buffer and the data's length.
// Data longer than what is left of the request is refused before any
// buffer is taken.
func readWriteData(body io.Reader) (*bulk, int, error) {
	n, err := xdr.ReadUint32(body)
	if err != nil {
		return nil, 0, err
	}
	padded := int64(n) + int64(xdrPad(int(n)))
	if lr, ok := body.(*io.LimitedReader); ok && padded > lr.N {
		return nil, 0, fmt.Errorf("write data of %d bytes: %w", n, io.ErrUnexpectedEOF)
	}
	if n > math.MaxInt32 {
		return nil, 0, fmt.Errorf("write data of %d bytes: too long", n)
	}
	data := getBulk(int(n))
	if _, err := io.ReadFull(body, data.data(int(n))[:padded]); err != nil {
		data.release()
		return nil, 0, err
	}
	return data, int(n), nil
}

func onWrite(ctx context.Context, w *response, userHandle Handler) error {
	w.errorFmt = wccDataErrorFormatter
	var req writeArgs
	if err := xdr.Read(w.req.Body, &req); err != nil {
		return &NFSStatusError{NFSStatusInval, err}
	}
	data, dataLen, err := readWriteData(w.req.Body)
	if err != nil {
		return &NFSStatusError{NFSStatusInval, err}
	}
	defer data.release()

	fs, path, err := userHandle.FromHandle(req.Handle)
	if err != nil {
		return &NFSStatusError{NFSStatusStale, err}
	}
	if !billy.CapabilityCheck(fs, billy.WriteCapability) {
		return &NFSStatusError{NFSStatusROFS, os.ErrPermission}
	}
	if req.Count > math.MaxInt32 {
		return &NFSStatusError{NFSStatusFBig, os.ErrInvalid}
	}
	if req.How != uint32(unstable) && req.How != uint32(dataSync) && req.How != uint32(fileSync) {
		return &NFSStatusError{NFSStatusInval, os.ErrInvalid}
	}

	// stat first for pre-op wcc.
	fullPath := fs.Join(path...)
	info, err := fs.Stat(fullPath)
	if err != nil {
		if os.IsNotExist(err) {
			return &NFSStatusError{NFSStatusNoEnt, err}
		}
		return &NFSStatusError{NFSStatusAccess, err}
	}
	if !info.Mode().IsRegular() {
		return &NFSStatusError{NFSStatusInval, os.ErrInvalid}
	}
	preOpCache := ToFileAttribute(info, fullPath).AsCache()

	// now the actual op.
	file, err := fs.OpenFile(fs.Join(path...), os.O_RDWR, info.Mode().Perm())
	if err != nil {
		return &NFSStatusError{NFSStatusAccess, err}
	}
	if req.Offset > 0 {
		if _, err := file.Seek(int64(req.Offset), io.SeekStart); err != nil {
			return &NFSStatusError{NFSStatusIO, err}
		}
	}
	end := req.Count
	if dataLen < int(end) {
		end = uint32(dataLen)
	}
	writtenCount, err := file.Write(data.data(dataLen)[:end])
	if err != nil {
		Log.Errorf("Error writing: %v", err)
		return &NFSStatusError{statusFromWriteError(err), err}
	}
	if err := file.Close(); err != nil {
		Log.Errorf("error closing: %v", err)
		return &NFSStatusError{statusFromWriteError(err), err}
	}

	writer := bytes.NewBuffer([]byte{})
	if err := xdr.Write(writer, uint32(NFSStatusOk)); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}

	if err := WriteWcc(writer, preOpCache, tryStat(fs, path)); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	if err := xdr.Write(writer, uint32(writtenCount)); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	if err := xdr.Write(writer, fileSync); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	if err := xdr.Write(writer, w.Server.ID); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}

	if err := w.Write(writer.Bytes()); err != nil {
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	return nil
}
