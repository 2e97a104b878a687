package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"
)

// Limits on what CopyIn writes into a workspace: seeding only ever writes
// a stored playbook version, far below them.
const (
	maxCopyInFiles = 1000
	maxCopyInBytes = 64 << 20
)

// tarFolder streams root/dir as a tar archive with names relative to dir.
// Regular files, folders and symlinks (as links, never followed) are
// archived; the reader of the archive decides what to keep.
func tarFolder(ctx context.Context, root *os.Root, dir string) (io.ReadCloser, error) {
	dir, ok := CleanRelPath(dir)
	if !ok {
		root.Close()
		return nil, fmt.Errorf("workspace: invalid folder %q", dir)
	}
	st, err := root.Lstat(dir)
	if err != nil {
		root.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if !st.IsDir() {
		root.Close()
		return nil, fmt.Errorf("workspace: %q is not a folder", dir)
	}
	pr, pw := io.Pipe()
	go func() {
		defer root.Close()
		tw := tar.NewWriter(pw)
		fsys := root.FS()
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if d.IsDir() && (d.Name() == "__pycache__" || d.Name() == "node_modules" || (d.Name() == ".agent" && path.Dir(p) == dir)) {
				// Never part of a playbook: the agent's own state (history,
				// checkpoints) and caches stay out of the archive.
				return fs.SkipDir
			}
			rel := p
			if dir != "." {
				rel = p[len(dir):]
				if rel == "" {
					return nil
				}
				rel = rel[1:]
			} else if p == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				if link, err = root.Readlink(p); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return nil // sockets and the like: not archived
			}
			hdr.Name = rel
			if d.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if hdr.Typeflag != tar.TypeReg {
				return nil
			}
			f, err := root.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyN(tw, f, hdr.Size)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// untarInto extracts regular files and folders of archive into root/dir;
// other entry types are skipped, and names that would leave dir are refused.
func untarInto(ctx context.Context, root *os.Root, dir string, archive io.Reader) error {
	dir, ok := CleanRelPath(dir)
	if !ok {
		return fmt.Errorf("workspace: invalid folder %q", dir)
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	tr := tar.NewReader(archive)
	var files int
	var total int64
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("workspace: read archive: %w", err)
		}
		name, ok := CleanRelPath(hdr.Name)
		if !ok || name == "." {
			if hdr.Typeflag == tar.TypeDir && name == "." {
				continue
			}
			return fmt.Errorf("workspace: archive entry %q leaves its folder", hdr.Name)
		}
		target := path.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("workspace: %w", err)
			}
		case tar.TypeReg:
			files++
			total += hdr.Size
			if files > maxCopyInFiles || total > maxCopyInBytes {
				return errors.New("workspace: archive too large to copy in")
			}
			if err := root.MkdirAll(path.Dir(target), 0o755); err != nil {
				return fmt.Errorf("workspace: %w", err)
			}
			// Remove first: a symlink planted at target is replaced, not
			// written through.
			_ = root.Remove(target)
			f, err := root.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("workspace: %w", err)
			}
			_, err = io.CopyN(f, tr, hdr.Size)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("workspace: write %s: %w", name, err)
			}
			if !hdr.ModTime.IsZero() {
				_ = root.Chtimes(target, time.Now(), hdr.ModTime)
			}
		}
	}
}
