package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Remote is a result store in object storage, shared by workers on other
// machines. A result is published in two steps: every file as a blob named by
// its sha256, then the key's entry, which lists the files. The entry is the
// commit point: a key exists only once its entry does, a stage killed before
// that leaves only unreferenced blobs, and a reader checks every file's digest
// as it downloads it.
type Remote interface {
	// Entry returns a key's entry.json; an error wrapping fs.ErrNotExist when
	// the key was never published.
	Entry(ctx context.Context, key string) ([]byte, error)
	// PutEntry writes a key's entry.json. With exclusive set, an existing entry
	// stands and the call fails with ErrEntryExists (the first entry wins).
	PutEntry(ctx context.Context, key string, b []byte, exclusive bool) error
	// HasBlob says whether a blob is stored.
	HasBlob(ctx context.Context, sum string) (bool, error)
	// PutBlob stores size bytes from r as the blob named sum.
	PutBlob(ctx context.Context, sum string, r io.Reader, size int64) error
	// Blob copies a blob to w; an error wrapping fs.ErrNotExist when it is absent.
	Blob(ctx context.Context, sum string, w io.Writer) error
	// Check says whether the store can be used: the endpoint answers, the
	// credentials work and the bucket exists.
	Check(ctx context.Context) error
	// String is the store's URL.
	String() string
}

// ErrEntryExists is PutEntry's answer when another worker published the key first.
var ErrEntryExists = errors.New("entry already published")

// IsRemote says whether a --cache-dir value is a URL (s3://...) rather than a folder.
func IsRemote(cacheDir string) bool { return strings.Contains(cacheDir, "://") }

// OpenRemote opens a remote store from its URL. Only s3:// is supported; the
// endpoint, region and credentials come from the AWS environment variables.
func OpenRemote(raw string) (Remote, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--cache-dir %s: %w", raw, err)
	}
	switch u.Scheme {
	case "s3":
		return openS3(u)
	}
	return nil, fmt.Errorf("--cache-dir %s: unsupported store %q: use a folder or s3://BUCKET/PREFIX", raw, u.Scheme+"://")
}

// openRemote takes an s3:// --cache-dir out of opt, leaving the local store at
// its default inside the run folder, where it caches what the worker fetched
// and assembles what it publishes. A URL that cannot be opened gives a Remote
// whose every use reports why, so Plan fails before anything runs.
func openRemote(opt *Options) Remote {
	if !IsRemote(opt.CacheDir) {
		return nil
	}
	raw := opt.CacheDir
	opt.CacheDir = ""
	r, err := OpenRemote(raw)
	if err != nil {
		return brokenRemote{url: raw, err: err}
	}
	return r
}

// brokenRemote stands for a remote store that could not be opened.
type brokenRemote struct {
	url string
	err error
}

func (b brokenRemote) Entry(context.Context, string) ([]byte, error)           { return nil, b.err }
func (b brokenRemote) PutEntry(context.Context, string, []byte, bool) error    { return b.err }
func (b brokenRemote) HasBlob(context.Context, string) (bool, error)           { return false, b.err }
func (b brokenRemote) Check(context.Context) error                             { return b.err }
func (b brokenRemote) String() string                                          { return b.url }
func (b brokenRemote) PutBlob(context.Context, string, io.Reader, int64) error { return b.err }
func (b brokenRemote) Blob(context.Context, string, io.Writer) error           { return b.err }
