package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// defaultPerms are the permissions of a new file when the template sets none.
const defaultPerms = 0o644

// writeFile makes dest hold text with perms (0: the file's own, or defaultPerms for a new
// one), and reports whether it wrote. A file that already holds text with those
// permissions is left alone (its mtime too). Otherwise the text goes to a temporary file in
// the same directory, which then replaces dest in one rename: a reader sees the old file or
// the new one, never a part. A symbolic link is followed: the file it points to is
// replaced. A new file keeps the owner of the one it replaces when pilotfish may give it.
func writeFile(dest string, text []byte, perms os.FileMode) (bool, error) {
	if real, err := filepath.EvalSymlinks(dest); err == nil {
		dest = real
	}
	mode := perms
	st, err := os.Stat(dest)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return false, fmt.Errorf("%s is not a regular file", dest)
	case err == nil:
		if mode == 0 {
			mode = st.Mode().Perm()
		}
		if st.Mode().Perm() == mode && st.Size() == int64(len(text)) && sameContent(dest, text) {
			return false, nil
		}
	case errors.Is(err, fs.ErrNotExist):
		if mode == 0 {
			mode = defaultPerms
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return false, err
		}
	default:
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".pilotfish-*")
	if err != nil {
		return false, err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(text); err != nil {
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		return false, err
	}
	if st != nil {
		if sys, isUnix := st.Sys().(*syscall.Stat_t); isUnix {
			_ = tmp.Chown(int(sys.Uid), int(sys.Gid)) // allowed to root, or to a file of our own
		}
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(name, dest); err != nil {
		return false, err
	}
	ok = true
	return true, nil
}

// sameContent reports whether the file at path holds exactly text.
func sameContent(path string, text []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(len(text))+1))
	return err == nil && bytes.Equal(b, text)
}
