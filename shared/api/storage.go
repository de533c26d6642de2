package api

// The storage service's credentials API (tunnelmesh-storage), served on the
// storage node's mesh address at StorageAuthPort. A node asks for its S3
// credentials with POST PathStorageCredentials, an empty JSON object as
// body, signed by its node key (nodeauth.SignPeer); the service checks the
// key against its current netmap and answers StorageCredentials.
const (
	ServiceStorage         = "storage"      // S3, tcp StorageS3Port
	ServiceStorageAuth     = "storage-auth" // credentials API, tcp StorageAuthPort
	StorageS3Port          = 9000
	StorageAuthPort        = 9001
	PathStorageCredentials = "/v1/credentials"
)

// StorageCredentials is what an S3 client needs. SecretAccessKey is a
// secret: store it with mode 0600 and never log it.
type StorageCredentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	Region          string `json:"region"`
	// Endpoint is the S3 endpoint URL, http://storage.<zone>:9000.
	Endpoint string `json:"endpoint"`
	// Buckets are the buckets the node may use.
	Buckets []string `json:"buckets"`
}
