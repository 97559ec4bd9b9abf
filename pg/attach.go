package pg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Large texts an operation executes (a schema dump of a megabyte) are not
// journaled whole: the journal line says their size and sha256, and the
// text itself goes to a file beside the journal, named by that hash.

type attachKey struct{}

// WithAttachments returns a context under which an operation hands large
// texts to f, which stores them (beside the journal) and returns where; the
// runner sets it with the journal.
func WithAttachments(ctx context.Context, f func(name string, data []byte) (string, error)) context.Context {
	return context.WithValue(ctx, attachKey{}, f)
}

// Digest is a large text's size and sha256, as the journal names it.
type Digest struct {
	Bytes  int
	SHA256 string
}

// DigestOf measures data.
func DigestOf(data []byte) Digest {
	sum := sha256.Sum256(data)
	return Digest{Bytes: len(data), SHA256: hex.EncodeToString(sum[:])}
}

// attach stores data through the context's attachment hook under a name
// made of its hash and ext, and returns where it went ("" without a hook,
// or the error in words when it could not be stored: the run goes on).
func attach(ctx context.Context, d Digest, ext string, data []byte) string {
	f, ok := ctx.Value(attachKey{}).(func(string, []byte) (string, error))
	if !ok || f == nil {
		return ""
	}
	where, err := f("sha256-"+d.SHA256+ext, data)
	if err != nil {
		return "not saved: " + err.Error()
	}
	return where
}
