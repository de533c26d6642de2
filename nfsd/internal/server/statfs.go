package server

import (
	"fmt"
	"syscall"
	"time"

	nfs "github.com/willscott/go-nfs"
)

// statfs fills st from the file system holding dir.
func statfs(dir string, st *nfs.FSStat) error {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := uint64(s.Bsize)
	st.TotalSize, st.FreeSize, st.AvailableSize = s.Blocks*bs, s.Bfree*bs, s.Bavail*bs
	st.TotalFiles, st.FreeFiles, st.AvailableFiles = s.Files, s.Ffree, s.Ffree
	st.CacheHint = time.Second
	return nil
}
