package runner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shrink-ml/shrink/internal/s3test"
)

// s3Store is a Store whose local folder is fresh and whose remote is the
// server's bucket under prefix: one worker.
func s3Store(t *testing.T, srv *s3test.Server, prefix string) *Store {
	t.Helper()
	remote, err := OpenRemote(srv.URL(prefix))
	if err != nil {
		t.Fatal(err)
	}
	st := &Store{Dir: t.TempDir(), Remote: remote}
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	return st
}

// stageFolder makes a finished stage's folder: a "checkpoint" of n seeded bytes,
// metrics and an extra file in a subfolder.
func stageFolder(t *testing.T, seed uint64, n int) string {
	t.Helper()
	dir := t.TempDir()
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	write(t, filepath.Join(dir, "model.safetensors"), b)
	write(t, filepath.Join(dir, "metrics.json"), []byte(fmt.Sprintf(`{"seed": %d}`, seed)))
	write(t, filepath.Join(dir, "extra", "teacher.safetensors"), []byte("teacher"))
	return dir
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func testKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestS3PublishFetch(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	a, b := s3Store(t, srv, "cache"), s3Store(t, srv, "cache")
	key := testKey("round trip")
	e := &Entry{Key: key, Stage: "train", Type: "train", Metrics: map[string]any{"accuracy": 0.5}}
	if err := a.Publish(stageFolder(t, 1, 4096), e, false); err != nil {
		t.Fatal(err)
	}
	objects := srv.Objects(t, "cache/")
	if len(objects) != 4 { // three blobs and the entry
		t.Fatalf("objects %v, want 3 blobs and 1 entry", objects)
	}
	if !strings.Contains(strings.Join(objects, " "), "cache/entries/"+key+".json") {
		t.Fatalf("no entry among %v", objects)
	}

	peeked, err := b.Peek(key)
	if err != nil {
		t.Fatal(err)
	}
	if peeked.Checkpoint != e.Checkpoint {
		t.Fatalf("peek: checkpoint %s, want %s", peeked.Checkpoint, e.Checkpoint)
	}
	if _, err := os.Stat(b.path(key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Peek downloaded the result: %v", err)
	}
	got, err := b.Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Checkpoint != e.Checkpoint || len(got.Files) != 3 || got.Metrics["accuracy"] != 0.5 {
		t.Fatalf("fetched entry %+v, want %+v", got, e)
	}
	for rel := range e.Files {
		want, _ := os.ReadFile(a.File(key, rel))
		have, err := os.ReadFile(b.File(key, rel))
		if err != nil || !bytes.Equal(have, want) {
			t.Fatalf("%s differs after the fetch (%v)", rel, err)
		}
	}
	if _, err := b.Lookup(testKey("never published")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lookup of an unpublished key: %v, want fs.ErrNotExist", err)
	}
}

// Of several workers publishing one key at once, the first entry wins and
// every worker ends up holding it.
func TestS3RaceFirstEntryWins(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	key := testKey("race")
	const workers = 4
	entries := make([]*Entry, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		st := s3Store(t, srv, "race")
		work := stageFolder(t, uint64(i), 2048) // different bytes: the worst case
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &Entry{Key: key, Stage: "s", Type: "train", Seconds: float64(i)}
			if err := st.Publish(work, e, false); err != nil {
				errs <- err
				return
			}
			entries[i] = e
			if got, err := st.Lookup(key); err != nil || got.Checkpoint != e.Checkpoint {
				errs <- fmt.Errorf("worker %d: local store holds %v (%v), not what Publish returned", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	published, err := s3Store(t, srv, "race").Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.Checkpoint != published.Checkpoint || e.Seconds != published.Seconds {
			t.Errorf("worker %d holds checkpoint %.8s (seconds %v), the store %.8s (seconds %v)", i, e.Checkpoint, e.Seconds, published.Checkpoint, published.Seconds)
		}
	}
}

func TestS3ConditionalPut(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	for _, unconditional := range []bool{false, true} {
		t.Run(fmt.Sprintf("unconditional=%v", unconditional), func(t *testing.T) {
			st := s3Store(t, srv, fmt.Sprintf("cond-%v", unconditional))
			r := st.Remote.(*s3Remote)
			r.unconditional.Store(unconditional) // as after a server refused If-None-Match
			ctx := context.Background()
			if err := r.PutEntry(ctx, "k", []byte("first"), true); err != nil {
				t.Fatal(err)
			}
			if err := r.PutEntry(ctx, "k", []byte("second"), true); !errors.Is(err, ErrEntryExists) {
				t.Fatalf("second exclusive put: %v, want ErrEntryExists", err)
			}
			if b, _ := r.Entry(ctx, "k"); string(b) != "first" {
				t.Fatalf("entry %q, want the first", b)
			}
			if err := r.PutEntry(ctx, "k", []byte("forced"), false); err != nil {
				t.Fatal(err)
			}
			if b, _ := r.Entry(ctx, "k"); string(b) != "forced" {
				t.Fatalf("entry %q after a replacing put", b)
			}
			if !unconditional && r.unconditional.Load() {
				t.Error("the server refused If-None-Match: entries fall back to last-writer-wins")
			}
		})
	}
}

// Blobs without an entry are no result; a result whose blob was altered or
// lost is reported corrupt, leaves nothing in the local store, and the next
// publish of the key repairs it.
func TestS3IncompleteAndCorrupt(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	ctx := context.Background()
	a := s3Store(t, srv, "c")
	work := stageFolder(t, 7, 1000)
	model, _ := os.ReadFile(filepath.Join(work, "model.safetensors"))

	// Blobs uploaded, then the worker died before the entry.
	if err := a.Remote.PutBlob(ctx, sha(model), bytes.NewReader(model), int64(len(model))); err != nil {
		t.Fatal(err)
	}
	key := testKey("c")
	for name, f := range map[string]func(string) (*Entry, error){"Peek": a.Peek, "Lookup": a.Lookup} {
		if _, err := f(key); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s with blobs but no entry: %v, want fs.ErrNotExist", name, err)
		}
	}

	e := &Entry{Key: key, Stage: "s", Type: "train"}
	if err := a.Publish(work, e, false); err != nil {
		t.Fatal(err)
	}
	cl := srv.Client(t)
	blob := "c/blobs/" + e.Checkpoint
	bad := bytes.Clone(model)
	bad[len(bad)/2] ^= 0xff
	if _, err := cl.PutObject(ctx, srv.Bucket, blob, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	b := s3Store(t, srv, "c")
	var ce *CorruptError
	if _, err := b.Lookup(key); !errors.As(err, &ce) || ce.File != "model.safetensors" || ce.Missing {
		t.Fatalf("lookup of an altered blob: %v, want model.safetensors corrupt", err)
	}
	if err := cl.RemoveObject(ctx, srv.Bucket, blob, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lookup(key); !errors.As(err, &ce) || !ce.Missing {
		t.Fatalf("lookup of a lost blob: %v, want model.safetensors missing", err)
	}
	if keys, _ := b.Keys(); len(keys) != 0 {
		t.Fatalf("a failed fetch left %v in the local store", keys)
	}

	// Another worker reruns the stage: its complete result replaces the broken
	// one. (Had it made the same bytes, re-uploading the lost blob would have
	// made the old entry whole again.)
	e2 := &Entry{Key: key, Stage: "s", Type: "train", Seconds: 2}
	if err := b.Publish(stageFolder(t, 8, 1000), e2, false); err != nil {
		t.Fatal(err)
	}
	if got, err := s3Store(t, srv, "c").Lookup(key); err != nil || got.Seconds != 2 {
		t.Fatalf("after the repair: %+v, %v", got, err)
	}
}

func TestOpenRemoteErrors(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	for _, tc := range []struct{ url, endpoint, want string }{
		{"s3:///prefix", "", "names no bucket"},
		{"gs://bucket/x", "", `unsupported store "gs://"`},
		{"s3://bucket/x", "localhost:9000", "is not a URL like http://HOST:PORT"},
	} {
		t.Setenv("AWS_ENDPOINT_URL", tc.endpoint)
		_, err := OpenRemote(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenRemote(%q) with endpoint %q: %v, want %q", tc.url, tc.endpoint, err, tc.want)
		}
	}
	if !IsRemote("s3://b/p") || IsRemote("/shared/cache") {
		t.Error("IsRemote")
	}
}

func TestS3MissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	remote, err := OpenRemote("s3://no-such-bucket/x")
	if err != nil {
		t.Fatal(err)
	}
	st := &Store{Dir: t.TempDir(), Remote: remote}
	if err := st.Check(); err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("Check: %v", err)
	}
}

// A worker killed (SIGKILL) while uploading its checkpoint leaves nothing a
// reader takes for a result, and the stage can be published again. The worker
// is this test binary, run again as a helper whose upload stalls after 17 MiB
// of a 20 MiB checkpoint (the first 16 MiB part of a multipart upload sent).
func TestS3KilledMidUpload(t *testing.T) {
	if dir := os.Getenv("SHRINK_TEST_UPLOAD_HELPER"); dir != "" {
		uploadHelper(t, dir)
		return
	}
	srv := s3test.Start(t)
	srv.Setenv(t)
	work := stageFolder(t, 3, 20<<20)
	model, _ := os.ReadFile(filepath.Join(work, "model.safetensors"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestS3KilledMidUpload$")
	cmd.Env = append(os.Environ(), "SHRINK_TEST_UPLOAD_HELPER="+work, "SHRINK_TEST_S3_URL="+srv.URL("killed"),
		"SHRINK_TEST_UPLOAD_SCRATCH="+t.TempDir()) // the killed helper cannot clean up its own
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stalled := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "stalled" {
				stalled <- true
				return
			}
		}
		stalled <- false
	}()
	select {
	case ok := <-stalled:
		if !ok {
			cmd.Wait()
			t.Fatal("the helper ended before its upload stalled")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper's upload did not reach the stall")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	objects := srv.Objects(t, "killed/")
	for _, o := range objects {
		if strings.Contains(o, "/entries/") || strings.HasSuffix(o, sha(model)) {
			t.Fatalf("a killed upload left %s (objects: %v)", o, objects)
		}
	}
	var parts int
	for u := range srv.Client(t).ListIncompleteUploads(context.Background(), srv.Bucket, "killed/", true) {
		if u.Err == nil {
			parts++
		}
	}
	t.Logf("after the kill: objects %v, %d incomplete multipart upload(s) (invisible to readers)", objects, parts)

	key := testKey("killed")
	b := s3Store(t, srv, "killed")
	if _, err := b.Lookup(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lookup after the kill: %v, want fs.ErrNotExist", err)
	}
	// The retry publishes the same result whole.
	if err := b.Publish(stageFolder(t, 3, 20<<20), &Entry{Key: key, Stage: "s", Type: "train"}, false); err != nil {
		t.Fatal(err)
	}
	if e, err := s3Store(t, srv, "killed").Lookup(key); err != nil || e.Checkpoint != sha(model) {
		t.Fatalf("after the retry: %v, %v", e, err)
	}
}

// uploadHelper publishes the folder dir under the key "killed", through a
// remote whose checkpoint upload stalls for good after 17 MiB.
func uploadHelper(t *testing.T, dir string) {
	remote, err := OpenRemote(os.Getenv("SHRINK_TEST_S3_URL"))
	if err != nil {
		t.Fatal(err)
	}
	st := &Store{Dir: os.Getenv("SHRINK_TEST_UPLOAD_SCRATCH"), Remote: stallingRemote{Remote: remote, after: 17 << 20}}
	st.Publish(dir, &Entry{Key: testKey("killed"), Stage: "s", Type: "train"}, false)
	t.Fatal("the upload did not stall")
}

type stallingRemote struct {
	Remote
	after int64
}

func (s stallingRemote) PutBlob(ctx context.Context, sum string, r io.Reader, size int64) error {
	if size <= s.after {
		return s.Remote.PutBlob(ctx, sum, r, size)
	}
	return s.Remote.PutBlob(ctx, sum, io.MultiReader(io.LimitReader(r, s.after), stall{}), size)
}

// stall is a reader that announces itself and never returns.
type stall struct{}

func (stall) Read([]byte) (int, error) {
	fmt.Println("stalled")
	select {}
}

// A result whose upload failed is uploaded when next looked up; a local
// result that lost the race to another worker's is replaced by the winner.
func TestS3LookupSyncs(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	a := s3Store(t, srv, "sync")
	remote := a.Remote
	a.Remote = brokenRemote{url: "s3://down/", err: errors.New("connection refused")}
	key := testKey("sync")
	if err := a.Publish(stageFolder(t, 1, 500), &Entry{Key: key, Stage: "s", Type: "train"}, false); err == nil {
		t.Fatal("publish to a store that is down succeeded")
	}
	if e, err := a.Lookup(key); err != nil || e == nil {
		t.Fatalf("while the store is down the local result stands: %v, %v", e, err)
	}
	a.Remote = remote
	local, err := a.Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s3Store(t, srv, "sync").Lookup(key); err != nil || got.Checkpoint != local.Checkpoint {
		t.Fatalf("the failed upload was not repaired: %v, %v", got, err)
	}

	// c published key2 first; d assembled its own (different) result locally only.
	key2 := testKey("sync2")
	c, d := s3Store(t, srv, "sync"), s3Store(t, srv, "sync")
	won := &Entry{Key: key2, Stage: "s", Type: "train"}
	if err := c.Publish(stageFolder(t, 2, 500), won, false); err != nil {
		t.Fatal(err)
	}
	if err := d.publishLocal(stageFolder(t, 3, 500), &Entry{Key: key2, Stage: "s", Type: "train"}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Lookup(key2); err != nil || got.Checkpoint != won.Checkpoint {
		t.Fatalf("lookup kept the local loser: %v, %v", got, err)
	}
}
