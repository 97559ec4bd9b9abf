package lab

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// initdbOptions are the options every lab cluster is made with; they are
// part of a template's name so a change of options makes a new template.
var initdbOptions = []string{"-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"}

// templatePath is where a pristine initdb result for one build is kept, so
// a cold `lab up` copies 40 MB instead of bootstrapping a cluster (initdb is
// most of a cold start, and seconds on a busy 2-core machine).
func templatePath(cacheDir string, srv Server) string {
	key := strings.NewReplacer("-", "", "=", "", " ", "").Replace(strings.Join(initdbOptions, ""))
	return filepath.Join(cacheDir, "initdb", fmt.Sprintf("%s-%x", srv.Version, fnv32(srv.BinDir+key)))
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// saveTemplate keeps a copy of a fresh cluster; failure only costs speed.
func saveTemplate(datadir, tmpl string) {
	if _, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
		return
	}
	tmp, err := os.MkdirTemp(filepath.Dir(tmpl), "tmp-")
	if err != nil {
		return
	}
	if err := copyTree(datadir, tmp, oscmd.User{}); err != nil {
		os.RemoveAll(tmp)
		return
	}
	if err := os.Rename(tmp, tmpl); err != nil {
		os.RemoveAll(tmp) // another lab saved it first
	}
}

// copyTree copies a directory of regular files and folders, keeping modes,
// and gives every copy to u.
func copyTree(src, dst string, u oscmd.User) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a file or folder", path)
		}
		return u.Chown(target)
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
