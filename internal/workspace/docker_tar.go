package workspace

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// rebaseTar copies a tar archive made by the Docker API's archive
// endpoint, whose names all start with the copied folder's base name
// ("project/…", "playbook-1/…"), dropping that first part, so names are
// relative to the folder. The folder's own entry is left out. Owners are
// cleared; only names, types, modes, times, link targets and data pass.
func rebaseTar(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("workspace: read archive from the container: %w", err)
		}
		name, ok := stripFirst(hdr.Name)
		if !ok {
			continue // the folder itself
		}
		out := &tar.Header{
			Typeflag: hdr.Typeflag,
			Name:     name,
			Linkname: hdr.Linkname,
			Mode:     hdr.Mode & 0o7777,
			Size:     hdr.Size,
			ModTime:  hdr.ModTime,
			Format:   tar.FormatPAX,
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			out.Name += "/"
			out.Size = 0
		case tar.TypeLink:
			// Hard links name another entry of the archive.
			if out.Linkname, ok = stripFirst(hdr.Linkname); !ok {
				continue
			}
		case tar.TypeReg, tar.TypeSymlink:
		default:
			continue // devices, fifos: nothing a playbook holds
		}
		if hdr.Typeflag != tar.TypeReg {
			out.Size = 0
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, hdr.Size); err != nil {
				return fmt.Errorf("workspace: read archive from the container: %w", err)
			}
		}
	}
}

// stripFirst drops the first part of an archive name; ok is false for
// the first part alone and for names that are not plain relative paths.
func stripFirst(name string) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	name = strings.TrimSuffix(name, "/")
	_, rest, found := strings.Cut(name, "/")
	if !found || rest == "" {
		return "", false
	}
	clean, ok := CleanRelPath(rest)
	if !ok || clean == "." {
		return "", false
	}
	return clean, true
}

// retarInto rewrites archive for the Docker API's extract endpoint at the
// project folder: names are put under rel, every folder on the way gets
// its own entry (so the daemon does not create it owned by root), every
// entry is owned by the workspace's user, and only folders and regular
// files pass. Names that would leave the folder fail the copy, as does an
// archive over the size limits of the local runtime.
func (d *Docker) retarInto(rel string, archive io.Reader, w io.Writer) error {
	tr := tar.NewReader(archive)
	tw := tar.NewWriter(w)
	now := time.Now()
	made := map[string]bool{".": true}
	mkdir := func(dir string) error {
		var todo []string
		for p := dir; !made[p]; p = path.Dir(p) {
			todo = append(todo, p)
		}
		for i := len(todo) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeDir, Name: todo[i] + "/", Mode: 0o755,
				Uid: d.uid, Gid: d.gid, ModTime: now, Format: tar.FormatPAX,
			}); err != nil {
				return err
			}
			made[todo[i]] = true
		}
		return nil
	}
	if err := mkdir(rel); err != nil {
		return err
	}
	var files int
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("workspace: read archive: %w", err)
		}
		name, ok := CleanRelPath(hdr.Name)
		if !ok || name == "." {
			if ok && hdr.Typeflag == tar.TypeDir {
				continue
			}
			return fmt.Errorf("workspace: archive entry %q leaves its folder", hdr.Name)
		}
		target := path.Join(rel, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdir(target); err != nil {
				return err
			}
		case tar.TypeReg:
			files++
			total += hdr.Size
			if files > maxCopyInFiles || total > maxCopyInBytes {
				return errors.New("workspace: archive too large to copy in")
			}
			if err := mkdir(path.Dir(target)); err != nil {
				return err
			}
			mode := int64(0o644)
			if hdr.Mode&0o111 != 0 {
				mode = 0o755
			}
			mtime := hdr.ModTime
			if mtime.IsZero() {
				mtime = now
			}
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeReg, Name: target, Mode: mode, Size: hdr.Size,
				Uid: d.uid, Gid: d.gid, ModTime: mtime, Format: tar.FormatPAX,
			}); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, tr, hdr.Size); err != nil {
				return fmt.Errorf("workspace: read archive: %w", err)
			}
		default:
			// Symlinks, hard links, devices: not copied in.
		}
	}
}
