package nfs

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"

	"github.com/willscott/go-nfs-client/nfs/xdr"
)

type nfsReadArgs struct {
	Handle []byte
	Offset uint64
	Count  uint32
}

type nfsReadResponse struct {
	Count uint32
	EOF   uint32
}

// MaxRead is the advertised largest buffer the server is willing to read
const MaxRead = 1 << 24

func onRead(ctx context.Context, w *response, userHandle Handler) error {
	w.errorFmt = opAttrErrorFormatter
	var obj nfsReadArgs
	err := xdr.Read(w.req.Body, &obj)
	if err != nil {
		return &NFSStatusError{NFSStatusInval, err}
	}
	fs, path, err := userHandle.FromHandle(obj.Handle)
	if err != nil {
		return &NFSStatusError{NFSStatusStale, err}
	}

	fh, err := fs.Open(fs.Join(path...))
	if err != nil {
		if os.IsNotExist(err) {
			return &NFSStatusError{NFSStatusNoEnt, err}
		}
		return &NFSStatusError{NFSStatusAccess, err}
	}
	defer fh.Close()

	resp := nfsReadResponse{}
	setEOF := false

	fullPath := fs.Join(path...)
	info, err := fs.Stat(fullPath)
	if err != nil {
		return &NFSStatusError{NFSStatusAccess, err}
	}
	if int64(obj.Offset) >= info.Size() {
		obj.Count = 0
		setEOF = true
	} else if info.Size()-int64(obj.Offset) <= int64(obj.Count) {
		obj.Count = uint32(uint64(info.Size()) - obj.Offset)
		setEOF = true
	}
	if obj.Count > MaxRead {
		obj.Count = MaxRead
	}
	var data *bulk
	buf := []byte{}
	if obj.Count > 0 {
		data = getBulk(int(obj.Count))
		buf = data.data(int(obj.Count))[:obj.Count]
	}
	// todo: multiple reads if size isn't full
	cnt, err := fh.ReadAt(buf, int64(obj.Offset))
	if err != nil && !errors.Is(err, io.EOF) {
		data.release()
		return &NFSStatusError{NFSStatusIO, err}
	}
	resp.Count = uint32(cnt)
	if errors.Is(err, io.EOF) || setEOF {
		resp.EOF = 1
	}

	// The results up to the data's length are encoded here; the data
	// follows them in the reply from its own buffer, not copied.
	results := getReply()
	defer releaseReply(results)
	if err := xdr.Write(results, uint32(NFSStatusOk)); err != nil {
		data.release()
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	if err := WritePostOpAttrs(results, ToFileAttribute(info, fullPath)); err != nil {
		data.release()
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	var counts [12]byte
	binary.BigEndian.PutUint32(counts[0:], resp.Count)
	binary.BigEndian.PutUint32(counts[4:], resp.EOF)
	binary.BigEndian.PutUint32(counts[8:], resp.Count) // the data's length
	results.Write(counts[:])
	if err := w.Write(results.Bytes()); err != nil {
		data.release()
		return &NFSStatusError{NFSStatusServerFault, err}
	}
	if data != nil {
		return w.writeData(data, cnt)
	}
	return nil
}
