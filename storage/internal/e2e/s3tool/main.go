// Command s3tool is the S3 client (minio-go) the storage lab tests run
// inside network namespaces. Credentials come from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION; the endpoint is the first argument
// (HOST:PORT).
//
//	s3tool ENDPOINT put BUCKET KEY SIZE_BYTES   prints the sha256 of the random data put
//	s3tool ENDPOINT get BUCKET KEY              prints the sha256 of the object
//	s3tool ENDPOINT range BUCKET KEY FIRST LAST prints the sha256 of bytes FIRST..LAST
//	s3tool ENDPOINT multipart BUCKET KEY SIZE   like put, in 5 MiB parts
//	s3tool ENDPOINT presign BUCKET KEY          prints a presigned GET URL (1 h)
//	s3tool ENDPOINT list BUCKET                 prints one key per line
//	s3tool ENDPOINT rangecheck BUCKET KEY FIRST LAST
//	                                            GETs the object and the range, prints "ok N" when the range is the slice
//	s3tool ENDPOINT mb BUCKET                   creates the bucket
//	s3tool ENDPOINT bench BUCKET SIZE COUNT     PUTs then GETs COUNT objects of SIZE bytes, prints "put MB/s get MB/s"
//	s3tool ENDPOINT stat BUCKET KEY             prints the object's size (HEAD)
//	s3tool ENDPOINT stall-put BUCKET KEY SIZE SENT
//	                                            a single streaming PUT of SIZE bytes that stops after SENT:
//	                                            prints "stalled" and waits to be killed (durability tests)
//	s3tool ENDPOINT stall-multipart BUCKET KEY PARTS
//	                                            a multipart upload: PARTS parts of 5 MiB, then a part that
//	                                            stops after 1 MiB: prints "stalled UPLOAD-ID" and waits to be killed
//	s3tool - fetch URL                          plain HTTP GET (no credentials), prints the body's sha256
//	s3tool - cat URL                            plain HTTP GET, prints the body
//	s3tool - gen SIZE SEED                      writes SIZE pseudo-random bytes determined by SEED to stdout,
//	                                            then their sha256 to stderr
//
// A refused request exits 3 and prints "s3 error: <code> <status>".
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: s3tool ENDPOINT put|get|range|multipart|presign|list ...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if os.Args[1] == "-" && len(os.Args) == 4 && (os.Args[2] == "fetch" || os.Args[2] == "cat") {
		fetch(ctx, os.Args[3], os.Args[2] == "cat")
		return
	}
	if os.Args[1] == "-" && len(os.Args) == 5 && os.Args[2] == "gen" {
		gen(os.Args[3], os.Args[4])
		return
	}
	c, err := minio.New(os.Args[1], &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		Region: os.Getenv("AWS_REGION"),
	})
	if err != nil {
		fail(err)
	}
	a := os.Args[2:]
	switch {
	case a[0] == "put" && len(a) == 4, a[0] == "multipart" && len(a) == 4:
		n, err := strconv.ParseInt(a[3], 10, 64)
		if err != nil {
			fail(err)
		}
		h := sha256.New()
		r := io.TeeReader(io.LimitReader(rand.Reader, n), h)
		opts := minio.PutObjectOptions{ContentType: "application/octet-stream", UserMetadata: map[string]string{"origin": "s3tool"}}
		size := n
		if a[0] == "multipart" {
			opts.PartSize = 5 << 20
			size = -1
		}
		if _, err := c.PutObject(ctx, a[1], a[2], r, size, opts); err != nil {
			fail(err)
		}
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
	case a[0] == "get" && len(a) == 3, a[0] == "range" && len(a) == 5:
		opts := minio.GetObjectOptions{}
		if a[0] == "range" {
			first, err1 := strconv.ParseInt(a[3], 10, 64)
			last, err2 := strconv.ParseInt(a[4], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				fail(err)
			}
			if err := opts.SetRange(first, last); err != nil {
				fail(err)
			}
		}
		o, err := c.GetObject(ctx, a[1], a[2], opts)
		if err != nil {
			fail(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, o); err != nil {
			fail(err)
		}
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
	case a[0] == "rangecheck" && len(a) == 5:
		first, err1 := strconv.ParseInt(a[3], 10, 64)
		last, err2 := strconv.ParseInt(a[4], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			fail(err)
		}
		whole := getAll(ctx, c, a[1], a[2], minio.GetObjectOptions{})
		var opts minio.GetObjectOptions
		if err := opts.SetRange(first, last); err != nil {
			fail(err)
		}
		part := getAll(ctx, c, a[1], a[2], opts)
		if last >= int64(len(whole)) || !bytes.Equal(part, whole[first:last+1]) {
			fmt.Fprintf(os.Stderr, "s3tool: range %d-%d of %d bytes: got %d bytes, not the slice\n", first, last, len(whole), len(part))
			os.Exit(1)
		}
		fmt.Printf("ok %d\n", len(part))
	case a[0] == "mb" && len(a) == 2:
		if err := c.MakeBucket(ctx, a[1], minio.MakeBucketOptions{Region: os.Getenv("AWS_REGION")}); err != nil {
			fail(err)
		}
	case a[0] == "bench" && len(a) == 4:
		size, err1 := strconv.Atoi(a[2])
		count, err2 := strconv.Atoi(a[3])
		if err := errors.Join(err1, err2); err != nil || size <= 0 || count <= 0 {
			fail(fmt.Errorf("bench: want SIZE and COUNT above 0"))
		}
		buf := make([]byte, size)
		if _, err := rand.Read(buf); err != nil {
			fail(err)
		}
		start := time.Now()
		for i := range count {
			if _, err := c.PutObject(ctx, a[1], fmt.Sprintf("bench/%d", i), bytes.NewReader(buf), int64(size), minio.PutObjectOptions{}); err != nil {
				fail(err)
			}
		}
		put := time.Since(start)
		start = time.Now()
		for i := range count {
			o, err := c.GetObject(ctx, a[1], fmt.Sprintf("bench/%d", i), minio.GetObjectOptions{})
			if err != nil {
				fail(err)
			}
			if n, err := io.Copy(io.Discard, o); err != nil || n != int64(size) {
				fail(fmt.Errorf("bench get %d: %d bytes, %v", i, n, err))
			}
		}
		get := time.Since(start)
		mb := float64(size) * float64(count) / 1e6
		fmt.Printf("%.1f %.1f\n", mb/put.Seconds(), mb/get.Seconds())
	case a[0] == "presign" && len(a) == 3:
		u, err := c.PresignedGetObject(ctx, a[1], a[2], time.Hour, nil)
		if err != nil {
			fail(err)
		}
		fmt.Println(u.String())
	case a[0] == "stat" && len(a) == 3:
		info, err := c.StatObject(ctx, a[1], a[2], minio.StatObjectOptions{})
		if err != nil {
			fail(err)
		}
		fmt.Println(info.Size)
	case a[0] == "stall-put" && len(a) == 5:
		size, err1 := strconv.ParseInt(a[3], 10, 64)
		sent, err2 := strconv.ParseInt(a[4], 10, 64)
		if err := errors.Join(err1, err2); err != nil || sent >= size {
			fail(fmt.Errorf("stall-put: want SENT below SIZE"))
		}
		_, err := c.PutObject(ctx, a[1], a[2], io.MultiReader(io.LimitReader(rand.Reader, sent), stall("stalled")), size,
			minio.PutObjectOptions{DisableMultipart: true})
		fail(fmt.Errorf("stall-put ended: %v", err))
	case a[0] == "stall-multipart" && len(a) == 4:
		parts, err := strconv.Atoi(a[3])
		if err != nil || parts < 1 {
			fail(fmt.Errorf("stall-multipart: want PARTS above 0"))
		}
		core := &minio.Core{Client: c}
		id, err := core.NewMultipartUpload(ctx, a[1], a[2], minio.PutObjectOptions{})
		if err != nil {
			fail(err)
		}
		const part = 5 << 20
		for i := 1; i <= parts; i++ {
			if _, err := core.PutObjectPart(ctx, a[1], a[2], id, i, io.LimitReader(rand.Reader, part), part, minio.PutObjectPartOptions{}); err != nil {
				fail(err)
			}
		}
		_, err = core.PutObjectPart(ctx, a[1], a[2], id, parts+1, io.MultiReader(io.LimitReader(rand.Reader, 1<<20), stall("stalled "+id)), part,
			minio.PutObjectPartOptions{})
		fail(fmt.Errorf("stall-multipart: part %d ended: %v", parts+1, err))
	case a[0] == "list" && len(a) == 2:
		for o := range c.ListObjects(ctx, a[1], minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				fail(o.Err)
			}
			fmt.Println(o.Key)
		}
	default:
		fmt.Fprintln(os.Stderr, "s3tool: bad arguments")
		os.Exit(2)
	}
}

// stall is a reader that prints line once it is first read (the data before
// it has been handed to the client) and then blocks until the process is
// killed.
func stall(line string) io.Reader { return &stallReader{line: line} }

type stallReader struct{ line string }

func (r *stallReader) Read([]byte) (int, error) {
	fmt.Println(r.line)
	select {}
}

// gen writes size bytes of ChaCha8 output keyed by sha256(seed) to stdout
// and their sha256 to stderr.
func gen(sizeArg, seed string) {
	size, err := strconv.ParseInt(sizeArg, 10, 64)
	if err != nil || size < 0 {
		fail(fmt.Errorf("gen: SIZE %q: want a byte count", sizeArg))
	}
	src := mrand.NewChaCha8(sha256.Sum256([]byte(seed)))
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(os.Stdout, h), 1<<20)
	buf := make([]byte, 1<<20)
	for size > 0 {
		k := int(min(size, int64(len(buf))))
		_, _ = src.Read(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			fail(fmt.Errorf("gen: %w", err))
		}
		size -= int64(k)
	}
	if err := w.Flush(); err != nil {
		fail(fmt.Errorf("gen: %w", err))
	}
	fmt.Fprintln(os.Stderr, hex.EncodeToString(h.Sum(nil)))
}

func getAll(ctx context.Context, c *minio.Client, bucket, key string, opts minio.GetObjectOptions) []byte {
	o, err := c.GetObject(ctx, bucket, key, opts)
	if err != nil {
		fail(err)
	}
	b, err := io.ReadAll(o)
	if err != nil {
		fail(err)
	}
	return b
}

func fetch(ctx context.Context, url string, cat bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fail(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Printf("s3 error: fetch %d\n", resp.StatusCode)
		os.Exit(3)
	}
	if cat {
		if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
			fail(err)
		}
		return
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		fail(err)
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
}

func fail(err error) {
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.StatusCode != 0 {
		fmt.Printf("s3 error: %s %d\n", er.Code, er.StatusCode)
		os.Exit(3)
	}
	fmt.Fprintln(os.Stderr, "s3tool:", err)
	os.Exit(1)
}
