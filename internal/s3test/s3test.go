// Package s3test starts a real S3-compatible server for tests: the versitygw
// gateway serving a temporary folder on loopback.
//
// Install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// Tests that need it skip when it is not installed, unless SHRINK_REQUIRE_S3 is
// set (CI sets it), when they fail instead.
package s3test

import (
	"context"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is a running gateway with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string
	Root      string // the folder it serves: Root/Bucket/<object key>
}

// Binary finds versitygw on $PATH or in $GOPATH/bin, or skips the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0): skipping the S3 tests"
	if os.Getenv("SHRINK_REQUIRE_S3") != "" {
		t.Fatal(msg + ", which SHRINK_REQUIRE_S3 requires")
	}
	t.Skip(msg)
	return ""
}

// Start runs a gateway for the test's duration and creates the bucket.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{AccessKey: "shrinktest", SecretKey: "shrinktest-secret", Bucket: "shrink", Root: t.TempDir()}
	addr := freeAddr(t)
	s.Endpoint = "http://" + addr
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey, "--quiet", "posix", s.Root)
	log, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	if err := waitListening(addr, 15*time.Second); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("versitygw did not start: %v\n%s", err, b)
	}
	if err := s.Client(t).MakeBucket(context.Background(), s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return s
}

// Env is the AWS environment a client of this server needs.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
	}
}

// Setenv sets Env in this process for the test's duration.
func (s *Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "") // it would take precedence
}

// URL is an s3:// store URL in the bucket.
func (s *Server) URL(prefix string) string { return fmt.Sprintf("s3://%s/%s", s.Bucket, prefix) }

// Client is a direct client, for looking behind the store's back.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Objects lists the object keys under a prefix.
func (s *Server) Objects(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range s.Client(t).ListObjects(context.Background(), s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
