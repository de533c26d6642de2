// Package cluster holds what several storage nodes share to form one
// SeaweedFS cluster over the mesh: the cluster secret, the S3 keys every
// node derives from it, and the peers' mesh addresses.
//
// Keys: each member's S3 key pair is HMAC-SHA256 of the cluster secret
// over the epoch, the node ID and the node's public key (Deriver). Every
// storage node of the cluster computes the same keys from its own netmap,
// so a key issued by one node is accepted by every node's S3 gateway and
// nothing is synchronised between them; a node that leaves the netmap (or
// is re-keyed) loses its key on each storage node as that node's netmap
// arrives. Without the secret (only the storage nodes hold it, mode 0600)
// nobody can compute a key from the public node IDs and keys.
//
// Peers: the cluster's SeaweedFS masters are addressed by mesh IP; names in
// the configuration are resolved in the netmap (Resolve).
package cluster
