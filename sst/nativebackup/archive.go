package nativebackup

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// DefaultLogArchiveDir is the stock [sst] sst-log-archive-dir.
const DefaultLogArchiveDir = "/tmp/sst_log_archive"

// archiveLogs keeps the previous run's logs, as the stock script does with
// sst-log-archive=1 (MDEV-17973): each existing log, under either the
// mariadb-backup.* or the older mariabackup.* name, is gzipped into the
// archive directory as <name>.<YYYY.MM.DD-HH.MM.SS.N>.gz, or renamed beside
// itself when that directory is unusable. Like the stock script, it never
// prunes the archive.
func archiveLogs(datadir, archiveDir string, names []string, now time.Time, log *slog.Logger) {
	stamp := now.Format("2006.01.02-15.04.05.000000000")
	for _, n := range names {
		for _, name := range []string{n, "mariabackup" + n[len("mariadb-backup"):]} {
			src := filepath.Join(datadir, name)
			if _, err := os.Lstat(src); err != nil {
				continue
			}
			dst := filepath.Join(archiveDir, name+"."+stamp+".gz")
			err := gzipTo(src, dst)
			if err == nil {
				err = os.Remove(src)
			}
			if err != nil {
				local := src + "." + stamp
				if rerr := os.Rename(src, local); rerr != nil {
					log.Warn(fmt.Sprintf("archive %s: %v; %v", src, err, rerr))
					continue
				}
				log.Warn(fmt.Sprintf("archive %s into %s: %v; kept it as %s", src, archiveDir, err, local))
			}
		}
	}
}

func gzipTo(src, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	return zw.Close()
}
