package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Remote is a Remote in an S3-compatible bucket, under a prefix:
//
//	PREFIX/blobs/<sha256>        a stored file, named by its content
//	PREFIX/entries/<key>.json    a key's entry.json, written last
type s3Remote struct {
	client         *minio.Client
	bucket, prefix string
	url            string
	// unconditional is set once the server has refused If-None-Match: entries
	// are then written after a check for an existing one (see PutEntry).
	unconditional atomic.Bool
}

// openS3 configures a client the way the AWS tools do: the endpoint from
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (with path-style addressing, which
// S3-compatible servers expect), else AWS S3 itself; the region from
// AWS_REGION or AWS_DEFAULT_REGION; credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), else ~/.aws/credentials, else
// the instance or pod role (IAM, web identity).
func openS3(u *url.URL) (*s3Remote, error) {
	raw := u.String()
	if u.Host == "" {
		return nil, fmt.Errorf("--cache-dir %s names no bucket: use s3://BUCKET/PREFIX", raw)
	}
	host, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	endpoint := firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	if endpoint != "" {
		eu, err := url.Parse(endpoint)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" || strings.Trim(eu.Path, "/") != "" {
			return nil, fmt.Errorf("S3 endpoint %q (from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL) is not a URL like http://HOST:PORT", endpoint)
		}
		host, secure, lookup = eu.Host, eu.Scheme == "https", minio.BucketLookupPath
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
	})
	client, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, BucketLookup: lookup,
		Region: firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"),
	})
	if err != nil {
		return nil, fmt.Errorf("--cache-dir %s: %w", raw, err)
	}
	return &s3Remote{client: client, bucket: u.Host, prefix: strings.Trim(u.Path, "/"), url: raw}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func (r *s3Remote) String() string { return r.url }

func (r *s3Remote) blobKey(sum string) string  { return path.Join(r.prefix, "blobs", sum) }
func (r *s3Remote) entryKey(key string) string { return path.Join(r.prefix, "entries", key+".json") }
func (r *s3Remote) where(object string) string { return "s3://" + r.bucket + "/" + object }
func (r *s3Remote) errorf(err error) error     { return fmt.Errorf("%s: %w", r.url, err) }
func (r *s3Remote) objectErr(o string, e error) error {
	if isNotFound(e) {
		return fmt.Errorf("%s: %w", r.where(o), fs.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", r.where(o), e)
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusNotFound || resp.Code == minio.NoSuchKey
}

func (r *s3Remote) Check(ctx context.Context) error {
	ok, err := r.client.BucketExists(ctx, r.bucket)
	switch {
	case err != nil:
		return r.errorf(fmt.Errorf("cannot use the bucket (check AWS_ENDPOINT_URL, AWS_REGION and the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", err))
	case !ok:
		return r.errorf(fmt.Errorf("bucket %q does not exist: create it, or name another in --cache-dir", r.bucket))
	}
	return nil
}

func (r *s3Remote) Entry(ctx context.Context, key string) ([]byte, error) {
	var buf bytes.Buffer
	if err := r.get(ctx, r.entryKey(key), &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (r *s3Remote) Blob(ctx context.Context, sum string, w io.Writer) error {
	return r.get(ctx, r.blobKey(sum), w)
}

func (r *s3Remote) get(ctx context.Context, object string, w io.Writer) error {
	obj, err := r.client.GetObject(ctx, r.bucket, object, minio.GetObjectOptions{})
	if err == nil {
		_, err = io.Copy(w, obj) // a missing object shows on the first read
		obj.Close()
	}
	if err != nil {
		return r.objectErr(object, err)
	}
	return nil
}

func (r *s3Remote) HasBlob(ctx context.Context, sum string) (bool, error) {
	_, err := r.client.StatObject(ctx, r.bucket, r.blobKey(sum), minio.StatObjectOptions{})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, r.objectErr(r.blobKey(sum), err)
	}
	return true, nil
}

// PutBlob relies on S3's atomic PUT: an object appears only complete, and an
// interrupted upload leaves no object (an interrupted multipart upload, for
// files over 16 MiB, leaves parts no listing shows; a bucket lifecycle rule
// aborting incomplete uploads reclaims them).
func (r *s3Remote) PutBlob(ctx context.Context, sum string, rd io.Reader, size int64) error {
	_, err := r.client.PutObject(ctx, r.bucket, r.blobKey(sum), rd, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return r.objectErr(r.blobKey(sum), err)
	}
	return nil
}

// conflictRetries bounds the retries of a conditional write that raced another
// one still in progress (S3 answers 409 ConditionalRequestConflict).
const conflictRetries = 5

// PutEntry with exclusive set uses If-None-Match: *, so of two workers racing
// on one key exactly one writes the entry. A server that rejects the header
// (501 NotImplemented) gets a check for an existing entry and then a plain
// write; two workers can then both write, the last one winning. That is safe
// here: a key hashes everything its stage depends on and stages are
// deterministic, so both entries name the same checkpoint, each entry is
// written whole in one PUT, and readers verify every file it lists.
func (r *s3Remote) PutEntry(ctx context.Context, key string, b []byte, exclusive bool) error {
	object := r.entryKey(key)
	for attempt := 0; ; attempt++ {
		opts := minio.PutObjectOptions{ContentType: "application/json"}
		if exclusive && r.unconditional.Load() {
			if _, err := r.client.StatObject(ctx, r.bucket, object, minio.StatObjectOptions{}); err == nil {
				return ErrEntryExists
			}
		} else if exclusive {
			opts.SetMatchETagExcept("*")
		}
		_, err := r.client.PutObject(ctx, r.bucket, object, bytes.NewReader(b), int64(len(b)), opts)
		if err == nil {
			return nil
		}
		resp := minio.ToErrorResponse(err)
		switch {
		case !exclusive: // a plain write has no conflict to resolve
		case resp.StatusCode == http.StatusPreconditionFailed:
			return ErrEntryExists
		case resp.StatusCode == http.StatusNotImplemented && !r.unconditional.Load():
			r.unconditional.Store(true)
			continue
		case resp.StatusCode == http.StatusConflict && attempt < conflictRetries:
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			continue
		}
		return r.objectErr(object, err)
	}
}

var _ Remote = (*s3Remote)(nil)
