package output

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// RotatingFile appends to a file and rotates it by size: path → path.1 → path.2 …, keeping
// Keep old files, gzip-compressed (path.1.gz) when Compress is set. Compression runs in the
// background so that a rotation never stalls the job whose output is written.
type RotatingFile struct {
	Path     string
	Size     int64 // rotate when the file would grow past this; 0 never rotates
	Keep     int
	Compress bool

	mu   sync.Mutex
	f    *os.File
	size int64
	gz   sync.WaitGroup
	// closed: Close ran, yet the copier may still write what the pipe held when the job
	// ended. Nobody waits for a background compression any more, so it runs in Write.
	closed bool
	// OnError reports write and rotation errors (they never stop the job).
	OnError func(error)
}

// Open opens (creating) the file for appending.
func (r *RotatingFile) Open() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.openLocked()
}

func (r *RotatingFile) openLocked() error {
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(r.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating whenever the next whole line would take the file past Size,
// so that no file grows beyond Size (unless a single line is longer) and no line is cut
// across two files.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	written := 0
	for len(p) > 0 {
		if r.f == nil {
			if err := r.openLocked(); err != nil {
				r.report(err)
				return written, err
			}
		}
		chunk := p
		if r.Size > 0 {
			chunk = r.fitting(p)
			if len(chunk) == 0 {
				if err := r.rotateLocked(); err != nil {
					r.report(fmt.Errorf("cannot rotate %s: %w", r.Path, err))
					chunk = p
				} else {
					continue
				}
			}
		}
		n, err := r.f.Write(chunk)
		r.size += int64(n)
		written += n
		if err != nil {
			r.report(err)
			return written, err
		}
		p = p[len(chunk):]
	}
	return written, nil
}

// fitting is the longest prefix of p made of whole lines that still fits in the file; a
// line longer than Size fits only an empty file.
func (r *RotatingFile) fitting(p []byte) []byte {
	room := r.Size - r.size
	end := 0
	for end < len(p) {
		i := bytes.IndexByte(p[end:], '\n')
		next := len(p)
		if i >= 0 {
			next = end + i + 1
		}
		if int64(next) > room && (end > 0 || r.size > 0) {
			break
		}
		end = next
	}
	return p[:end]
}

func (r *RotatingFile) report(err error) {
	if r.OnError != nil {
		r.OnError(err)
	}
}

func (r *RotatingFile) name(i int) string {
	if r.Compress {
		return fmt.Sprintf("%s.%d.gz", r.Path, i)
	}
	return fmt.Sprintf("%s.%d", r.Path, i)
}

func (r *RotatingFile) rotateLocked() error {
	r.f.Close()
	r.f = nil
	r.gz.Wait() // the previous path.1 must be compressed before it moves on
	if r.Keep == 0 {
		if err := os.Remove(r.Path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return r.openLocked()
	}
	os.Remove(r.name(r.Keep))
	for i := r.Keep - 1; i >= 1; i-- {
		if err := os.Rename(r.name(i), r.name(i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if r.Compress {
		tmp := r.Path + ".1.tmp"
		if err := os.Rename(r.Path, tmp); err != nil {
			return err
		}
		compress := func() {
			if err := gzipFile(tmp, r.name(1)); err != nil {
				r.report(fmt.Errorf("cannot compress %s: %w", tmp, err))
			}
		}
		if r.closed {
			compress()
		} else {
			r.gz.Add(1)
			go func() {
				defer r.gz.Done()
				compress()
			}()
		}
	} else if err := os.Rename(r.Path, r.name(1)); err != nil {
		return err
	}
	return r.openLocked()
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".part", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(dst+".part", dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// Close waits for background compression and closes the file.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gz.Wait()
	r.closed = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
