package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	nfs "github.com/willscott/go-nfs"
)

// Program and procedure numbers (RFC 1813, appendix I).
const (
	mountProgram    = 100005
	mountProcExport = 5
)

func init() {
	if err := registerExport(); err != nil {
		panic(fmt.Sprintf("register MOUNT EXPORT: %v", err))
	}
}

// registerExport adds MOUNT EXPORT to go-nfs. A go-nfs HandleFunc takes its
// unexported response type, so the function is made with reflect; it calls
// only the response's exported Write.
func registerExport() error {
	ft := reflect.TypeOf(nfs.HandleFunc(nil))
	errType := reflect.TypeOf((*error)(nil)).Elem()
	fn := reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		err := onExport(args[0].Interface().(context.Context), args[1], args[2].Interface())
		out := reflect.New(errType).Elem()
		if err != nil {
			out.Set(reflect.ValueOf(err))
		}
		return []reflect.Value{out}
	})
	return nfs.RegisterMessageHandler(mountProgram, mountProcExport, fn.Interface().(nfs.HandleFunc))
}

func onExport(_ context.Context, w reflect.Value, userHandler any) error {
	h, ok := userHandler.(*handler)
	if !ok {
		return errors.New("mount export: not an nfsd handler")
	}
	var names []string
	for _, e := range h.s.exports {
		if _, _, err := h.s.access(h.addr, e); err == nil {
			names = append(names, "/"+e.name)
		}
	}
	exportLists.Inc()
	write := w.MethodByName("Write")
	if !write.IsValid() {
		return errors.New("mount export: response has no Write")
	}
	if res := write.Call([]reflect.Value{reflect.ValueOf(exportsReply(names))}); !res[0].IsNil() {
		return res[0].Interface().(error)
	}
	return nil
}

// exportsReply encodes MOUNT EXPORT's result: a linked list of
// (dirpath, groups) with every groups list empty.
func exportsReply(dirs []string) []byte {
	var b []byte
	for _, d := range dirs {
		b = binary.BigEndian.AppendUint32(b, 1) // value follows
		b = binary.BigEndian.AppendUint32(b, uint32(len(d)))
		b = append(b, d...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = binary.BigEndian.AppendUint32(b, 0) // no groups
	}
	return binary.BigEndian.AppendUint32(b, 0) // end of list
}
