package policy

import "time"

// Bodies of the admin policy API (api.PathAdminPolicy), shared by the
// registry and the CLI.
//
//	GET  PathAdminPolicy              the current policy (404 when none)
//	GET  PathAdminPolicy?version=N    version N, kept for rollback
//	GET  PathAdminPolicy + "/versions" every stored version, newest first
//	PUT  PathAdminPolicy              PutRequest: parse, check, run the
//	                                  tests against the mesh, then store it
//	                                  as the next version and apply it;
//	                                  400 with every problem otherwise
//
// A rollback is a PUT of an older version's text: it becomes the newest
// version, so the history only grows.

// PathVersionsSuffix follows api.PathAdminPolicy for the version list.
const PathVersionsSuffix = "/versions"

// Version is one stored version of the policy.
type Version struct {
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Policy is the file exactly as uploaded, comments included.
	Policy string `json:"policy"`
}

// VersionInfo describes a stored version without its text.
type VersionInfo struct {
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	Bytes     int       `json:"bytes"`
}

// PutRequest is the body of PUT PathAdminPolicy.
type PutRequest struct {
	Policy string `json:"policy"`
	// IfVersion, when non-zero, makes the registry refuse the policy (409)
	// unless its current version is IfVersion, so two pipelines cannot
	// overwrite each other unseen.
	IfVersion uint64 `json:"if_version,omitempty"`
}

// PutResponse is the answer to a successful PUT.
type PutResponse struct {
	Version uint64 `json:"version"`
	// Changed is false when the policy equals the current one byte for
	// byte; no new version is stored then.
	Changed bool `json:"changed"`
	// Tests is the number of test targets that passed.
	Tests int `json:"tests"`
}
