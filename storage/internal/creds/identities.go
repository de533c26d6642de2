package creds

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// The -s3.config format of SeaweedFS (iam_pb.S3ApiConfiguration).
type s3Config struct {
	Identities []s3Identity `json:"identities"`
}

type s3Identity struct {
	Name        string         `json:"name"`
	Credentials []s3Credential `json:"credentials"`
	Actions     []string       `json:"actions"`
}

type s3Credential struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// Identities renders the SeaweedFS identities of the store: the admin
// identity, and per node Read, Write and List on each of buckets.
func (s *Store) Identities(buckets []string) ([]byte, error) {
	admin := s.Admin()
	c := s3Config{Identities: []s3Identity{{
		Name:        "tunnelmesh-storage",
		Credentials: []s3Credential{{AccessKey: admin.AccessKey, SecretKey: admin.Secret}},
		Actions:     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	for _, e := range s.Entries() {
		var actions []string
		for _, b := range buckets {
			actions = append(actions, "Read:"+b, "Write:"+b, "List:"+b)
		}
		c.Identities = append(c.Identities, s3Identity{
			Name:        "node-" + e.NodeID,
			Credentials: []s3Credential{{AccessKey: e.AccessKey, SecretKey: e.Secret}},
			Actions:     actions,
		})
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render identities: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteIdentities writes the identities file (mode 0600) into the data
// directory and returns its path.
func (s *Store) WriteIdentities(buckets []string) (string, error) {
	b, err := s.Identities(buckets)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, IdentitiesFile)
	if err := writeFileAtomic(path, b); err != nil {
		return "", fmt.Errorf("write identities: %w", err)
	}
	return path, nil
}
