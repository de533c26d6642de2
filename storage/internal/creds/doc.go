// Package creds issues, keeps and revokes the per-node S3 credentials of the
// storage service, and writes them as SeaweedFS identities.
//
// A node gets an access key ("TM" and 18 base32 characters) and a secret (40
// characters) from crypto/rand the first time it asks; nothing about them is
// derived from public data. They are kept in the data directory
// (credentials.json, mode 0600) bound to the node's ID and public key, so a
// node asking again gets the same pair, and a node that re-joined with another
// key gets a new one. Credentials are revocable at once rather than rotating:
// S3 clients keep static keys in profiles and environment variables, so
// rotation would break them, while revocation follows the netmap — Prune
// drops every node no longer in it and the identities file is rewritten and
// reloaded within the netmap watch's latency.
//
// A store opened with OpenDerived (a storage cluster's node) draws nothing
// at random and saves nothing: a Deriver computes every key from the
// cluster's secret, and Sync gives every member of the netmap its key at
// once, so that every node of the cluster accepts a key another one issued.
//
// Identities (the -s3.config JSON): the supervisor's own admin identity, and
// one identity per node allowed Read, Write and List on each shared bucket
// and nothing else.
package creds
