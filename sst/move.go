package sst

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// move moves the entry src to dst, both in the swap's root or its work
// directories, with the guarantees of a rename: after a crash at any
// point, recovery finds the entry whole at src or at dst, never half of
// it at either. moved reports whether it is at dst, even with an error.
//
// A rename fails with EXDEV when the entry lives on another filesystem
// than its destination: on an overlayfs datadir (a container's), a
// directory of the image's lower layer cannot be renamed. Then the entry
// is copied next to dst under CopyPrefix (removed by recovery while
// incomplete), fsync'd, renamed to dst once complete, and only then
// removed from src, with MoveName naming both meanwhile so that recovery
// finishes the removal. Any other rename error is returned as it is.
func (s *Staging) move(src, dst string) (moved bool, err error) {
	rename := s.rename
	if rename == nil {
		rename = os.Rename
	}
	err = rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err == nil, err
	}
	name := filepath.Base(src)
	s.log.Info("rename across devices: copying instead", slog.String("path", src), slog.String("dest", dst))
	tmp := filepath.Join(filepath.Dir(dst), CopyPrefix+filepath.Base(dst))
	copied := func() error {
		if err := s.fail("copy:" + name); err != nil {
			return err
		}
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove %s: %w", tmp, err)
		}
		if err := copyTree(src, tmp); err != nil {
			return fmt.Errorf("copy %s to %s (rename: %v): %w", src, dst, syscall.EXDEV, err)
		}
		if err := s.fail("copy-done:" + name); err != nil {
			return err
		}
		marker := filepath.Join(s.Root, MoveName)
		if err := writeJournal(marker, []string{src, dst}); err != nil {
			return fmt.Errorf("write %s: %w", marker, err)
		}
		// tmp was made in dst's directory: this rename is on one filesystem.
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(marker)
			return err
		}
		return nil
	}
	if err := copied(); err != nil {
		os.RemoveAll(tmp)
		return false, err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return true, errors.Join(fmt.Errorf("fsync %s: %w", filepath.Dir(dst), err), s.removeSource(src))
	}
	if err := s.fail("copy-remove:" + name); err != nil {
		// The entry is whole at dst: finish the move, then fail the step.
		return true, errors.Join(err, s.removeSource(src))
	}
	return true, s.removeSource(src)
}

// removeSource removes the source of a copying move whose destination is
// complete, then the MoveName that named it.
func (s *Staging) removeSource(src string) error {
	if err := os.RemoveAll(src); err != nil {
		return Errorf(EACCES, "sst: remove %s once copied: %w", src, err)
	}
	if err := syncDir(filepath.Dir(src)); err != nil {
		return Errorf(EIO, "sst: fsync %s: %w", filepath.Dir(src), err)
	}
	if err := os.Remove(filepath.Join(s.Root, MoveName)); err != nil {
		return Errorf(EACCES, "sst: %w", err)
	}
	return syncDir(s.Root)
}

// finishMove completes a copying move that a crash interrupted: a
// complete destination named in MoveName means its source is partly
// removed, and the removal is finished; copies in progress are removed.
// Afterwards the root is as after a rename, done or not.
func (s *Staging) finishMove() error {
	marker := filepath.Join(s.Root, MoveName)
	b, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Errorf(EIO, "sst: read %s: %w", marker, err)
	default:
		paths := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(paths) != 2 || !s.inRoot(paths[0]) || !s.inRoot(paths[1]) {
			return Errorf(EIO, "sst: %s: want a source and a destination under %s, got %q; resolve by hand", marker, s.Root, b)
		}
		src, dst := paths[0], paths[1]
		if _, err := os.Lstat(dst); err == nil {
			s.log.Warn("finishing an interrupted move: removing the source, already copied", slog.String("path", src), slog.String("dest", dst))
			if err := s.removeSource(src); err != nil {
				return err
			}
		} else if err := os.Remove(marker); err != nil {
			return Errorf(EACCES, "sst: %w", err)
		}
	}
	for _, dir := range []string{s.Root, filepath.Join(s.Root, OldDirName), s.Dir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), CopyPrefix) {
				p := filepath.Join(dir, e.Name())
				s.log.Info("removing a copy an interrupted move left", slog.String("path", p))
				if err := os.RemoveAll(p); err != nil {
					return Errorf(EACCES, "sst: remove %s: %w", p, err)
				}
			}
		}
	}
	return nil
}

// inRoot: p is an absolute path strictly under the root.
func (s *Staging) inRoot(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p && strings.HasPrefix(p, s.Root+string(filepath.Separator))
}

// copyTree copies src (a file, symlink or directory tree) to dst, which
// must not exist, keeping modes, owners and modification times, and
// fsyncs every file and directory it makes. Sockets are left out (a
// server binds a new one); other special files are an error.
func copyTree(src, dst string) error {
	type dir struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dir
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			// Writable by us until its entries are in; its mode after.
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dir{to, fi})
		case m.IsRegular():
			if err := copyFile(p, to, fi); err != nil {
				return err
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case m&fs.ModeSocket != 0:
			return nil
		default:
			return fmt.Errorf("%s: cannot copy a %s", p, m.Type())
		}
		return copyOwner(to, fi)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := os.Chmod(d.path, d.fi.Mode().Perm()|d.fi.Mode()&(fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.fi.ModTime(), d.fi.ModTime()); err != nil {
			return err
		}
		if err := syncDir(d.path); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, fi.Mode().Perm()|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(fi.Mode().Perm()); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// copyOwner gives dst src's owner when it is not already ours (a joiner
// running as root; as mariadbd's user, every entry is already its own).
func copyOwner(dst string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
		return nil
	}
	return os.Lchown(dst, int(st.Uid), int(st.Gid))
}
