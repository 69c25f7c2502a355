// Package donorlock tells how long an SST donor refused writes, from the
// logs it wrote during the SST: the server's error log (the flush for the
// SST to "tables unlocked") or mariadb-backup's own log (BACKUP STAGE
// BLOCK_DDL to END, the provider pause Galera imposes on it). The bench's
// "lock s (log)" column and the demo's summary both come from here.
package donorlock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Donor log lines that bound the write lock. The server logs the first when
// the SST script asks for "flush tables"; the native methods and the stock
// scripts with [sst] time=1 log the release. The error log has 1 s
// resolution; WSREP_SST lines carry milliseconds, but the start is always
// a server line.
var (
	reLockStart = regexp.MustCompile(`(?i)flushing tables for SST|flush tables with read lock`)
	reLockEnd   = regexp.MustCompile(`(?i)tables unlocked|unlock tables|released? (the )?(global )?read lock|read lock released|resuming|continue`)
	// mariadb-backup's own log (1 s resolution). Under wsrep, BACKUP STAGE
	// BLOCK_DDL desyncs and pauses the provider (sql_backup.cc) and only
	// BACKUP STAGE END resumes it: commits wait from BLOCK_DDL on, not from
	// BLOCK_COMMIT.
	reBackupStart = regexp.MustCompile(`Start(?:ed|ing) BACKUP STAGE BLOCK_DDL`)
	reBackupEnd   = regexp.MustCompile(`All tables unlocked|Executing BACKUP STAGE END`)

	reLogTime = regexp.MustCompile(`^(?:\[\d+\] )?(\d{4}-\d{2}-\d{2} +\d{1,2}:\d{2}:\d{2})`)
	reSSTTime = regexp.MustCompile(`\((\d{8} \d{2}:\d{2}:\d{2}\.\d{3})\)\s*$`)
)

// BackupLogNames are the names of the donor's mariadb-backup log in its
// datadir: native-backup's, then the stock wsrep_sst_mariabackup's.
var BackupLogNames = []string{"mariadb-backup.backup.log", "mariabackup.backup.log"}

// LineTime returns a log line's timestamp: the WSREP_SST "(YYYYMMDD
// HH:MM:SS.mmm)" suffix when present, else the line's date prefix (the
// server's, or mariadb-backup's after its "[NN] " thread tag).
func LineTime(line string) (time.Time, bool) {
	if m := reSSTTime.FindStringSubmatch(line); m != nil {
		t, err := time.ParseInLocation("20060102 15:04:05.000", m[1], time.Local)
		return t, err == nil
	}
	if m := reLogTime.FindStringSubmatch(line); m != nil {
		t, err := time.ParseInLocation("2006-01-02 15:04:05", strings.Join(strings.Fields(m[1]), " "), time.Local)
		return t, err == nil
	}
	return time.Time{}, false
}

// ErrorLogSpan finds, in the donor's error log written during one SST, the
// time from the server flushing tables for the SST to the first later line
// that says the lock went; ok is false when the log shows no such pair.
func ErrorLogSpan(r io.Reader) (d time.Duration, ok bool) {
	return span(r, reLockStart, reLockEnd)
}

// BackupLogSpan does the same for a mariadb-backup.backup.log.
func BackupLogSpan(r io.Reader) (d time.Duration, ok bool) {
	return span(r, reBackupStart, reBackupEnd)
}

func span(r io.Reader, startRe, endRe *regexp.Regexp) (time.Duration, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var start, last time.Time
	for sc.Scan() {
		line := sc.Text()
		t, ok := LineTime(line)
		if ok {
			last = t
		}
		switch {
		case start.IsZero():
			if ok && startRe.MatchString(line) {
				start = t
			}
		case endRe.MatchString(line) && !startRe.MatchString(line):
			if !ok {
				t = last
			}
			return t.Sub(start), true
		}
	}
	return 0, false
}

// FindBackupLog returns the path and content of the mariadb-backup log the
// donor wrote in datadir at or after since; os.ErrNotExist when there is
// none.
func FindBackupLog(datadir string, since time.Time) (path string, data []byte, err error) {
	for _, name := range BackupLogNames {
		p := filepath.Join(datadir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.ModTime().Before(since) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return p, nil, fmt.Errorf("read backup log: %w", err)
		}
		return p, b, nil
	}
	return "", nil, fmt.Errorf("no %s in %s since %s: %w", strings.Join(BackupLogNames, " or "), datadir, since.Format(time.TimeOnly), os.ErrNotExist)
}

// Lock is how long a donor refused writes, and which log says so.
type Lock struct {
	D      time.Duration
	Source string // "error log" or the backup log's path
	What   string // the lines that bound it, in words
	// Resolution is the log's: a lock shorter than it may read 0.
	Resolution time.Duration
}

// Find measures the lock of one SST: from errorLog, what the donor's error
// log gained during it, else from the backup log written in datadir since
// the SST began.
func Find(errorLog []byte, datadir string, since time.Time) (Lock, error) {
	if d, ok := ErrorLogSpan(bytes.NewReader(errorLog)); ok {
		return Lock{D: d, Source: "error log", What: "flushing tables for SST to tables unlocked", Resolution: time.Second}, nil
	}
	path, data, err := FindBackupLog(datadir, since)
	if err != nil {
		return Lock{}, fmt.Errorf("donor lock: no flush in the error log, and %w", err)
	}
	if d, ok := BackupLogSpan(bytes.NewReader(data)); ok {
		return Lock{D: d, Source: path, What: "BACKUP STAGE BLOCK_DDL to END", Resolution: time.Second}, nil
	}
	return Lock{}, errors.New("donor lock: neither the error log nor " + path + " shows the lock's start and end")
}
