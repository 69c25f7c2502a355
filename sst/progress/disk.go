package progress

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DiskMeter measures an SST from what lands on the joiner's disk, for the
// methods that report no progress of their own (the stock scripts): the
// bytes written into the node's directories since the first Scan. It counts
// each file by inode, so a file rsync renames into place, or that
// mariabackup's move-back moves from <datadir>/.sst, counts once, and a
// file the joiner deletes (its old datadir) takes nothing back: the count
// only grows, as bytes landing do.
//
// Not safe for concurrent use.
type DiskMeter struct {
	// Roots are the directories to watch: the datadir and the InnoDB and
	// Aria directories outside it (sst.Dirs.Roots). A root that does not
	// exist yet is not an error.
	Roots []string

	files   map[fileID]fileSeen
	landed  int64
	scanned bool
}

type fileID struct{ dev, ino uint64 }

type fileSeen struct {
	size  int64
	mtime int64 // ns
}

// DiskScan is what one Scan saw.
type DiskScan struct {
	// Landed is the bytes landed in the roots since the first scan.
	Landed int64
	// Changed: a file grew, appeared, shrank or was written in place
	// since the previous scan (mariabackup's --prepare rewrites pages
	// without growing a file).
	Changed bool
	// Files and Bytes are what the roots hold: the payload files and
	// their size.
	Files int
	Bytes int64
}

// ErrNothingMeasurable is what Scan wraps when none of the roots could be
// read: the SST cannot be measured.
var ErrNothingMeasurable = errors.New("no SST directory readable")

// Scan walks the roots once. The first scan is the baseline: what is there
// already has not landed.
func (m *DiskMeter) Scan() (DiskScan, error) {
	seen := make(map[fileID]fileSeen, len(m.files))
	var out DiskScan
	readable := 0
	var firstErr error
	for _, root := range m.Roots {
		// A datadir is often a symbolic link to where the data lives.
		if r, err := filepath.EvalSymlinks(root); err == nil {
			root = r
		}
		if fi, err := os.Stat(root); err == nil && !fi.IsDir() {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s is not a directory", root)
			}
			continue
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if path == root {
					return err
				}
				return nil // a file or directory gone in between
			}
			if d.IsDir() || !d.Type().IsRegular() || skipFile(d.Name()) {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return nil
			}
			id := fileID{uint64(st.Dev), st.Ino}
			if _, dup := seen[id]; dup {
				return nil // under two roots, or hard-linked
			}
			now := fileSeen{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
			seen[id] = now
			out.Files++
			out.Bytes += now.size
			if !m.scanned {
				return nil
			}
			before, known := m.files[id]
			switch {
			case !known:
				m.landed += now.size
				out.Changed = true
			case now.size > before.size:
				m.landed += now.size - before.size
				out.Changed = true
			case now != before:
				out.Changed = true
			}
			return nil
		})
		switch {
		case err == nil:
			readable++
		case errors.Is(err, fs.ErrNotExist):
			readable++ // not created yet: nothing landed there
		case firstErr == nil:
			firstErr = err
		}
	}
	if readable == 0 && len(m.Roots) > 0 {
		return DiskScan{}, fmt.Errorf("%w: %w", ErrNothingMeasurable, firstErr)
	}
	m.files, m.scanned = seen, true
	out.Landed = m.landed
	return out, nil
}

// skipFile names the files in a node's directories that are not the SST's
// payload and change while it stalls: Galera's ring buffer (the joiner
// caches the cluster's write-sets in it during the SST), its state files,
// logs, sockets and pid files. The stock scripts' cpat keeps the same
// files out of their clean-up.
func skipFile(name string) bool {
	switch name {
	case "galera.cache", "grastate.dat", "gvwstate.dat", "sst_in_progress", "wsrep_sst.pid", "rsync_sst.pid":
		return true
	}
	if strings.HasPrefix(name, "gcache.page.") {
		return true
	}
	for _, suffix := range []string{".err", ".log", ".pid", ".sock", ".pem"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}
