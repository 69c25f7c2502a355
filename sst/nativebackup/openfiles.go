package nativebackup

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

// openFilesSlack is what mariadb-backup --backup holds open besides the
// tablespaces: the redo log it follows, the non-InnoDB file each copy
// thread reads, its sockets, logs and pipes. Measured: a few dozen; the
// slack covers --parallel up to 64.
const openFilesSlack = 256

// datadirScan is what the donor learns from one walk of its datadir.
type datadirScan struct {
	Payload     int64 // estimated mbstream payload bytes
	Tablespaces int   // InnoDB data files: *.ibd, ibdata*, undo*
}

// scanDatadir estimates the stream size for progress and the joiner's
// free-space check (the datadir's files minus what a backup does not copy),
// and counts the InnoDB data files: mariadb-backup keeps every one open
// for the whole backup (unless --close-files), so their number sets the
// open-files limit it needs.
func scanDatadir(datadir string) datadirScan {
	var sc datadirScan
	filepath.WalkDir(datadir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p != datadir && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || name == "galera.cache" || strings.HasPrefix(name, "ib_logfile") ||
			strings.HasSuffix(name, ".log") || strings.HasSuffix(name, ".err") {
			return nil
		}
		if strings.HasSuffix(name, ".ibd") || strings.HasSuffix(name, ".isl") ||
			strings.HasPrefix(name, "ibdata") || strings.HasPrefix(name, "undo") {
			sc.Tablespaces++
		}
		if info, err := d.Info(); err == nil {
			sc.Payload += info.Size()
		}
		return nil
	})
	return sc
}

// openFilesPlan is the open-files limit mariadb-backup --backup runs with.
type openFilesPlan struct {
	Need int    // descriptors it holds at once
	Hard uint64 // the hard RLIMIT_NOFILE, which it cannot exceed
	Flag string // --open-files-limit=N, or "" under --close-files
}

// planOpenFiles decides the --open-files-limit for tablespaces InnoDB data
// files. mariadb-backup raises its soft limit to it (and lowers its hard
// limit to the same value) unless its soft limit is already as high; that
// fails unless it is within the hard limit. The flag is always given: the
// Go runtime raised this process's soft limit, but a child gets the one
// the server passed down, which this process cannot read back. mariadbd
// raises its own limit to its open_files_limit the same way, lowering its
// hard limit too, so an SST can inherit a hard limit no higher than that.
// A hard limit below the need is refused here, before any byte moves: the
// backup would fail with "Too many open files" after copying for as long
// as it takes to reach the last tablespaces. closeFiles is mariadb-backup's
// --close-files, which needs no such limit.
func planOpenFiles(tablespaces int, hard uint64, closeFiles bool, who string) (openFilesPlan, error) {
	p := openFilesPlan{Need: tablespaces + openFilesSlack, Hard: hard}
	if closeFiles {
		return p, nil
	}
	if uint64(p.Need) > hard {
		fix := ""
		if who == "donor" {
			fix = "; or add --close-files to [sst] inno-backup-opts"
		}
		return p, sst.Errorf(sst.EMFILE, "native-backup: mariadb-backup keeps the %d InnoDB tablespaces open and needs %d open files, "+
			"but the %s's hard limit RLIMIT_NOFILE is %d: raise LimitNOFILE= of the %s's unit (galera-supervisor.service ships 131072), "+
			"and open_files_limit in [mysqld] if it is set lower, since mariadbd lowers its hard limit to it%s",
			tablespaces, p.Need, who, hard, who, fix)
	}
	p.Flag = fmt.Sprintf("--open-files-limit=%d", p.Need)
	return p, nil
}

// hasCloseFiles reports whether the user's inno-backup-opts ask
// mariadb-backup to close tablespaces after copying them.
func hasCloseFiles(opts string) bool {
	for _, f := range strings.Fields(opts) {
		if f == "--close-files" || f == "--close-files=1" || f == "--close-files=ON" || f == "--close_files" {
			return true
		}
	}
	return false
}

// openFilesFor plans mariadb-backup's open files on this node (who:
// "donor" for --backup, "joiner" for --prepare) from its hard limit and
// logs the plan, so that a failure for lack of descriptors can be told
// from others.
func openFilesFor(s *sst.Session, tablespaces int, who string, closeFiles bool) (openFilesPlan, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return openFilesPlan{}, sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: getrlimit RLIMIT_NOFILE: %w", err))
	}
	p, err := planOpenFiles(tablespaces, lim.Max, closeFiles, who)
	if err != nil {
		return p, err
	}
	s.Log.Info("native-backup: open files mariadb-backup needs",
		slog.Int("tablespaces", tablespaces), slog.Int("open_files", p.Need), slog.Uint64("nofile_hard", p.Hard))
	return p, nil
}
