package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// ownFileNames are the supervisor's per-node files in the datadir. They
// belong to the node, never to its donor. The native methods leave them
// alone, but the stock joiners need not: wsrep_sst_mariabackup's joiner
// removes every file of the datadir its cpat does not keep, these
// included, before it moves the donor's backup in. The joiner's
// supervisor keeps them across a joiner SST (ownFiles). (The stock rsync
// sends directories and InnoDB and Aria files only, and mariabackup backs
// up by known names, so no SST sends the donor's; restore removes one
// anyway, should a method ever send it.)
var ownFileNames = []string{maintenance.File, quorum.DecisionFile, SSTIncompleteFile}

// ownFiles are the node's own files as they were when a joiner SST
// began: name to content, nil for a file the node did not have.
type ownFiles map[string][]byte

// readOwnFiles reads the node's own files in datadir.
func readOwnFiles(datadir string, log *slog.Logger) ownFiles {
	own := ownFiles{}
	for _, name := range ownFileNames {
		b, err := os.ReadFile(filepath.Join(datadir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot keep a file of the node's across its SST", slog.String("path", filepath.Join(datadir, name)), slog.Any("error", err))
			continue // unknown: restore leaves it as the SST does
		}
		own[name] = b
	}
	return own
}

// restore puts the node's own files back in datadir after a joiner SST:
// a file the node had gets its content back, a file it did not have is
// removed (a copy of the donor's). A file whose content is unchanged is
// not touched. The maintenance file says maint, the mode in force, rather
// than what it held at the SST's start: an operator may have turned the
// mode on or off meanwhile.
func (own ownFiles) restore(datadir string, maint *maintenance.State, log *slog.Logger) {
	for _, name := range ownFileNames {
		if name == maintenance.File {
			restoreMaintenance(datadir, maint, log)
			continue
		}
		want, known := own[name]
		if !known {
			continue
		}
		path := filepath.Join(datadir, name)
		got, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot check a file of the node's after its SST", slog.String("path", path), slog.Any("error", err))
			continue
		}
		had, has := want != nil, err == nil
		switch {
		case had && (!has || !bytes.Equal(got, want)):
			if err := writeAtomic(datadir, name, want); err != nil {
				log.Warn("cannot put a file of the node's back after its SST", slog.String("path", path), slog.Any("error", err))
				continue
			}
			log.Info("SST: put the node's own file back", slog.String("path", path))
		case !had && has:
			if err := os.Remove(path); err != nil {
				log.Warn("cannot remove a file the SST brought", slog.String("path", path), slog.Any("error", err))
				continue
			}
			log.Info("SST: removed a file the node did not have", slog.String("path", path))
		}
	}
}

// restoreMaintenance makes the file say the mode in force.
func restoreMaintenance(datadir string, maint *maintenance.State, log *slog.Logger) {
	path := filepath.Join(datadir, maintenance.File)
	got, err := maintenance.Read(datadir)
	if err != nil {
		log.Warn("cannot check the maintenance mode after the SST", slog.Any("error", err))
		return
	}
	switch {
	case maint != nil && !sameMaintenance(got, maint):
		if err := maintenance.Write(datadir, *maint); err != nil {
			log.Warn("cannot put the maintenance mode back after the SST", slog.Any("error", err))
			return
		}
		log.Info("SST: put the node's maintenance mode back", slog.String("path", path))
	case maint == nil && got != nil:
		if err := maintenance.Clear(datadir); err != nil {
			log.Warn("cannot remove a maintenance mode the SST brought", slog.Any("error", err))
			return
		}
		log.Info("SST: removed a maintenance mode the node was not in", slog.String("path", path))
	}
}

func sameMaintenance(a, b *maintenance.State) bool {
	return a != nil && b != nil && a.Since.Equal(b.Since) && a.By == b.By && a.Reason == b.Reason
}

// writeAtomic writes b to datadir/name through a rename, as the files'
// own writers do.
func writeAtomic(datadir, name string, b []byte) error {
	path := filepath.Join(datadir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if fi, err := os.Stat(datadir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			os.Chown(tmp, int(sys.Uid), int(sys.Gid))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
