package nativecopy

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

// Resume: a joiner whose SST breaks (the link, the donor, the joiner
// itself killed) keeps its staging (sst.Staging.Keep, marked with the
// donor's cluster UUID), and the next SST from any donor of that cluster
// offers what it holds as delta basis: the donor compares every block and
// sends those that differ, so a resumed transfer ends with the same
// checks, and the same data, as a fresh one.

// resumeBasis hashes the files the stagings kept from an earlier SST, for
// the plan. Redo logs are left out: they go as the donor's live part
// over zeros, as in a full SST (see prepareDelta).
func resumeBasis(pl *sst.Placement, total int64, log *slog.Logger) ([]deltaFile, error) {
	var out []deltaFile
	var bytes int64
	for _, x := range pl.All() {
		if !x.Resumed {
			continue
		}
		err := filepath.WalkDir(x.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(x.Dir, p)
			name, ok := pl.Unroute(x, filepath.ToSlash(rel))
			if !ok || strings.HasPrefix(name, "@"+sst.TagInnoDBLog+"/") {
				return nil // sent whole, or pruned at the end
			}
			df, err := hashPath(p, name, nil)
			if err != nil {
				return err
			}
			out = append(out, df)
			// What the file holds, not its size: a file cut short by
			// the break has holes where chunks never came.
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					bytes += min(df.Size, st.Blocks*512)
				}
			}
			return nil
		})
		if err != nil {
			return nil, sst.Errorf(sst.EIO, "native-copy: resume: read %s: %w", x.Dir, err)
		}
	}
	if len(out) > 0 {
		log.Info("resume: bytes already in staging",
			slog.Int("files", len(out)), slog.Int64("resume_staged_bytes", bytes), slog.Int64("sst_bytes", total))
	}
	return out, nil
}

// planBasis is the plan's delta basis: what the stagings kept from an
// earlier SST, then, when this joiner's old datadir is one (deltaChoice),
// its files that are not staged yet.
// [sst] delta=0 turns both off: every file goes whole, over what staging
// holds.
func planBasis(s *sst.Session, pl *sst.Placement, h hello) ([]deltaFile, error) {
	var basis []deltaFile
	if mode, _, _ := s.Values().String("delta"); mode != "0" {
		var err error
		if basis, err = resumeBasis(pl, h.Total, s.Log); err != nil {
			return nil, err
		}
	}
	useDelta, why := deltaChoice(s, h.Cluster)
	if !useDelta {
		s.Log.Info("delta: off, full transfer", slog.Bool("delta", false), slog.String("delta_reason", why))
		return basis, nil
	}
	s.Log.Info("delta: comparing blocks with the old datadir", slog.Bool("delta", true), slog.String("delta_reason", why))
	s.SetDelta()
	old, _, err := prepareDelta(pl, s.Log)
	if err != nil {
		return nil, err
	}
	return append(basis, old...), nil
}

// endStaging is what a failed SST does with its stagings: keeps them for
// the next SST to resume from, unless the disk filled (a staging must not
// hold the space a fresh SST needs) or failed (EIO: what it holds is
// suspect, such as a file that read back other than written).
func endStaging(s *sst.Session, pl *sst.Placement, err error) {
	var se *sst.Error
	local := errors.As(err, &se) && (se.Errno == sst.ENOSPC || se.Errno == sst.EIO)
	if local || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) {
		for _, x := range pl.All() {
			x.Abort()
		}
		return
	}
	for _, x := range pl.All() {
		if n := x.StagedBytes(); n > 0 && x.Keep() {
			s.Log.Info("keeping the staging for the next SST to resume from", slog.String("path", x.Dir), slog.Int64("resume_staged_bytes", n))
		} else {
			x.Abort()
		}
	}
}
