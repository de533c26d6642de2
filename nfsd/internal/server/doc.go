// Package server serves NFSv3 and its MOUNT protocol (on one TCP port) from
// go-nfs, with nfsd's own access control around it.
//
// # Who is asking
//
// Every accepted connection is identified by its source address through
// the current netmap (package identity): sources outside the mesh prefix,
// and addresses that are not a node's, are refused at accept. The check is
// repeated on every request that names a file handle, on every MOUNT and
// EXPORT, and whenever a new netmap arrives the connections of nodes that
// are gone are closed, so a removed node loses its open mounts as soon as
// the netmap says so.
//
// # What it may do
//
// An export's allow lists (node names, tag:NAME, "*") grant read-write or
// read-only access; read-write wins when a node is in both. A node with no
// grant cannot mount, list, or use a handle of the export (a handle is
// checked against the grants of the export it names, so a guessed or
// copied handle is worth nothing without a grant). A read-only grant serves
// the export through a read-only view: every change is NFS3ERR_ROFS.
//
// # Goroutines
//
// Serve owns one goroutine per connection (go-nfs's own serve loop and its
// writer run under it) and waits for them before it returns; it returns
// when its context ends or the listener fails.
//
// # MOUNT EXPORT
//
// go-nfs answers MOUNT NULL, MNT and UMNT; this package adds EXPORT
// (program 100005, procedure 5), which libnfs and showmount call: it lists
// the exports the asking node may mount, with no groups.
package server
