package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// storagePartSize is the multipart part size of a put: minio-go buffers one
// part in memory when the size is unknown (stdin), and its default for that
// case is hundreds of MiB.
const storagePartSize = 16 << 20

// runStorageS3 runs `storage put|get|ls`: S3 operations with this node's own
// credentials (asked from the storage service as `storage credentials`
// does), against the storage node's S3 address from the netmap.
func runStorageS3(ctx context.Context, env Env, op string, args []string) error {
	positional := map[string]string{
		"put": "FILE|- BUCKET/KEY",
		"get": "BUCKET/KEY FILE|-",
		"ls":  "BUCKET[/PREFIX]",
	}[op]
	fs := newFlags(env, "storage "+op, "[flags] "+positional)
	stateDir := fs.String("state-dir", state.DefaultDir, "state directory of the node")
	server := fs.String("server", "", "the storage service's credentials API, HOST:PORT (default: the node in the netmap publishing it)")
	endpoint := fs.String("endpoint", "", "S3 endpoint, HOST:PORT or http://HOST:PORT (default: the storage node in the netmap, or the endpoint the credentials name)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	want := 2
	if op == "ls" {
		want = 1
	}
	if err := parse(fs, args, want); err != nil {
		return err
	}
	if fs.NArg() != want {
		fmt.Fprintf(env.Stderr, "storage %s: want %s\n", op, positional)
		fs.Usage()
		return errUsage
	}
	var objArg string
	switch op {
	case "put":
		objArg = fs.Arg(1)
	default:
		objArg = fs.Arg(0)
	}
	bucket, key, err := splitBucketKey(objArg, op != "ls")
	if err != nil {
		return fmt.Errorf("storage %s: %w", op, err)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client, err := storageClient(ctx, *stateDir, *server, *endpoint)
	if err != nil {
		return fmt.Errorf("storage %s: %w", op, err)
	}
	switch op {
	case "put":
		err = storagePut(ctx, env, client, fs.Arg(0), bucket, key)
	case "get":
		err = storageGet(ctx, env, client, bucket, key, fs.Arg(1))
	case "ls":
		err = storageList(ctx, env, client, bucket, key)
	}
	if err != nil {
		return fmt.Errorf("storage %s %s: %w", op, objArg, s3Error(err))
	}
	return nil
}

// splitBucketKey splits BUCKET/KEY (an s3:// prefix is allowed). needKey
// says whether KEY must be present.
func splitBucketKey(s string, needKey bool) (bucket, key string, err error) {
	s = strings.TrimPrefix(s, "s3://")
	bucket, key, _ = strings.Cut(s, "/")
	switch {
	case bucket == "":
		return "", "", fmt.Errorf("%q: no bucket (want BUCKET/KEY)", s)
	case needKey && key == "":
		return "", "", fmt.Errorf("%q: no object key (want BUCKET/KEY)", s)
	}
	return bucket, key, nil
}

// storageClient asks for this node's credentials and returns an S3 client
// for the storage node.
func storageClient(ctx context.Context, stateDir, server, endpoint string) (*minio.Client, error) {
	creds, err := regclient.LoadCredentials(state.Dir(stateDir).Path(state.CredentialsFile))
	if err != nil {
		return nil, err
	}
	sc, s3Addr, err := fetchStorageCredentials(ctx, creds, server)
	if err != nil {
		return nil, err
	}
	if endpoint == "" {
		endpoint = s3Addr
	}
	if endpoint == "" {
		endpoint = sc.Endpoint
	}
	host, secure, err := parseS3Endpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(host, &minio.Options{
		Creds:  miniocreds.NewStaticV4(sc.AccessKeyID, sc.SecretAccessKey, ""),
		Secure: secure,
		Region: sc.Region,
	})
}

// parseS3Endpoint accepts HOST:PORT, http://HOST:PORT or https://HOST:PORT.
func parseS3Endpoint(s string) (host string, secure bool, err error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false, fmt.Errorf("s3 endpoint %q: want HOST:PORT or http(s)://HOST:PORT", s)
	}
	return u.Host, u.Scheme == "https", nil
}

func storagePut(ctx context.Context, env Env, c *minio.Client, file, bucket, key string) error {
	r := env.Stdin
	if r == nil {
		r = os.Stdin
	}
	size := int64(-1)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", file)
		}
		r, size = f, st.Size()
	}
	info, err := c.PutObject(ctx, bucket, key, r, size, minio.PutObjectOptions{PartSize: storagePartSize})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "put s3://%s/%s: %d bytes\n", bucket, key, info.Size)
	return nil
}

// storageGet writes the object to file (through a temporary file renamed
// into place, so a failed get leaves nothing half-written) or to stdout for
// "-"; the summary line goes to stderr then.
func storageGet(ctx context.Context, env Env, c *minio.Client, bucket, key, file string) error {
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer obj.Close()
	if file == "-" {
		n, err := io.Copy(env.Stdout, obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "got s3://%s/%s: %d bytes\n", bucket, key, n)
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, obj)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "got s3://%s/%s: %d bytes into %s\n", bucket, key, n, file)
	return nil
}

// storageList prints one line per object under prefix: size, time of last
// modification (UTC, RFC 3339) and key.
func storageList(ctx context.Context, env Env, c *minio.Client, bucket, prefix string) error {
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		fmt.Fprintf(env.Stdout, "%12d  %s  %s\n", o.Size, o.LastModified.UTC().Format(time.RFC3339), o.Key)
	}
	return nil
}

// s3Error adds the S3 error code and HTTP status to an S3 error's message.
func s3Error(err error) error {
	if r := minio.ToErrorResponse(err); r.Code != "" {
		return fmt.Errorf("%w (%s, HTTP %d)", err, r.Code, r.StatusCode)
	}
	return err
}
