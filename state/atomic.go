package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// beforeRename, when set (by tests only), runs after the temp file is written and synced and
// before it is renamed over the target. A non-nil error simulates the process dying at that
// moment: WriteFileAtomic returns it and leaves the temp file behind, as a crash would.
var beforeRename func(tmp string) error

// tempPrefix is how temp files of path start; Open removes leftovers with this prefix.
func tempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// WriteFileAtomic replaces path with data so that a reader (or the next start after a crash)
// sees either the old content or the new one, never a mix: the data goes to a temp file in the
// same folder, is fsynced, renamed over path, and the folder is fsynced so the rename itself
// survives a power cut.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, -1, -1)
}

// WriteFileLike is WriteFileAtomic keeping like's mode and, when running as
// root, its owner: a file another OS user reads (PgBouncer's ini) stays
// readable to it.
func WriteFileLike(path string, data []byte, like os.FileInfo) error {
	uid, gid := -1, -1
	if sys, ok := like.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		uid, gid = int(sys.Uid), int(sys.Gid)
	}
	return writeAtomic(path, data, like.Mode().Perm(), uid, gid)
}

func writeAtomic(path string, data []byte, perm os.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("write %s: create temp file: %w", path, err)
	}
	tmp := f.Name()
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: set permissions: %w", path, err)
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return fmt.Errorf("write %s: set owner: %w", path, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if beforeRename != nil {
		if err := beforeRename(tmp); err != nil {
			keep = true
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: rename temp file: %w", path, err)
	}
	keep = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: fsync folder: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable. Filesystems that cannot fsync a folder say EINVAL;
// there is nothing more to do on those.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// removeStrayTemps deletes temp files left by a WriteFileAtomic that never reached its rename.
// Only the lock holder calls it, so no live writer's temp file can be removed.
func removeStrayTemps(path string) {
	dir := filepath.Dir(path)
	prefix := tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
