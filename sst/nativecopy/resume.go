package nativecopy

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

// Resume: a joiner whose SST breaks (the link, the donor, the joiner
// itself killed) keeps its staging (sst.Staging.Keep, marked with the
// donor's cluster UUID), and the next SST from any donor of that cluster
// offers what it holds as delta basis: the donor compares every block and
// sends those that differ, so a resumed transfer ends with the same
// checks, and the same data, as a fresh one.

// resumeJobs lists the files the stagings kept from an earlier SST, to
// hash for the plan. Redo logs are left out: they go as the donor's live
// part over zeros, as in a full SST (see prepareDelta).
func resumeJobs(pl *sst.Placement, total int64, log *slog.Logger) ([]hashJob, error) {
	var out []hashJob
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
			out = append(out, pathJob(name, p))
			// What the file holds, not its size: a file cut short by
			// the break has holes where chunks never came.
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					bytes += min(fi.Size(), st.Blocks*512)
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

// planBasis is the plan's delta basis, hashed in the donor's blocks: what
// the stagings kept from an earlier SST, then, when this joiner's old
// datadir is one (deltaChoice), its files that are not staged yet.
// [sst] delta=0 turns both off: every file goes whole, over what staging
// holds; so does an older donor, which names no block (it would compare
// 1 MiB blocks in hex). The space is checked once the bases are declared
// (a base is on this disk already: sst.Placement.CheckSpace) and before
// they are hashed.
func planBasis(s *sst.Session, pl *sst.Placement, h hello, peer string) ([]deltaFile, error) {
	mode, _, _ := s.Values().String("delta")
	var jobs []hashJob
	if mode != "0" {
		if h.DeltaBlock == 0 {
			s.Log.Info("delta: off, full transfer", slog.Bool("delta", false),
				slog.String("delta_reason", "the donor is an older version that names no delta block size"))
			return nil, pl.CheckSpace()
		}
		if !validBlock(h.DeltaBlock) {
			return nil, sst.Errorf(sst.EPROTO, "native-copy: %s names a delta block of %d bytes: want a power of two from 4 KiB to 1 MiB", peer, h.DeltaBlock)
		}
		var err error
		if jobs, err = resumeJobs(pl, h.Total, s.Log); err != nil {
			return nil, err
		}
	}
	resumed := len(jobs)
	useDelta, why := deltaChoice(s, h.Cluster)
	if useDelta {
		s.Log.Info("delta: comparing blocks with the old datadir", slog.Bool("delta", true), slog.String("delta_reason", why),
			slog.Int64("delta_block", h.DeltaBlock))
		s.SetDelta()
		bases, err := prepareDelta(pl)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, bases...)
	} else {
		s.Log.Info("delta: off, full transfer", slog.Bool("delta", false), slog.String("delta_reason", why))
	}
	if err := pl.CheckSpace(); err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	t0 := time.Now()
	out, err := hashAll(jobs, h.DeltaBlock)
	if err != nil {
		return nil, sst.Errorf(sst.EIO, "native-copy: delta: read %w", err)
	}
	if useDelta {
		var bytes int64
		for _, df := range out[resumed:] {
			bytes += df.Size
		}
		s.Log.Info("delta mode: hashed existing files in place; staging keeps only the pages that differ",
			slog.Int("files", len(out)-resumed), slog.Int64("delta_base_bytes", bytes), slog.Int64("delta_block", h.DeltaBlock),
			slog.Duration("elapsed", time.Since(t0)))
	}
	return out, nil
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
