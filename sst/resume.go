package sst

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// ResumeName, in a root beside its staging, says which cluster the staged
// files are of: a joiner whose SST broke keeps its staging, and the next
// SST from a donor of that cluster, whichever donor, resumes from it. The
// staged files are only a basis: every block is compared with the donor's
// before it is kept, as for an old datadir in delta mode, so a staging
// half written, or written by a joiner killed mid-block, is as good a
// basis as any.
const ResumeName = ".sst-native-resume"

// resumeMark is ResumeName's content.
type resumeMark struct {
	Cluster string    `json:"cluster"`
	Since   time.Time `json:"since"` // when the staging began
}

// parseResume reads a resume marker; an error says why it is no good.
func parseResume(b []byte) (resumeMark, error) {
	var m resumeMark
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("unreadable: %w", err)
	}
	if !schema.ValidUUID(m.Cluster) || m.Cluster == schema.ZeroUUID {
		return m, fmt.Errorf("names no cluster (%q)", m.Cluster)
	}
	return m, nil
}

// readResume reads root's resume marker.
func readResume(root string) (resumeMark, error) {
	b, err := os.ReadFile(filepath.Join(root, ResumeName))
	if errors.Is(err, fs.ErrNotExist) {
		return resumeMark{}, errors.New("no " + ResumeName + " says which cluster it is of")
	}
	if err != nil {
		return resumeMark{}, err
	}
	return parseResume(b)
}

// writeResume marks root's staging as of cluster, durably: it must be on
// disk before any staged byte is. (A marker torn by a crash reads as
// unreadable, and its staging is discarded.)
func writeResume(root string, m resumeMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeJournal(filepath.Join(root, ResumeName), []string{string(b)})
}

// ResumeStaging is NewStaging for a joiner whose donor is of cluster: a
// staging left by an earlier SST of that same cluster is kept (Resumed),
// anything else there is removed, and the log says why. cluster "" (a
// donor that does not say) resumes nothing and marks nothing.
func ResumeStaging(root string, keep KeepRule, log *slog.Logger, cluster string) (*Staging, error) {
	return newStaging(root, keep, log, cluster)
}

// takeOver decides whether s.Dir, left by an earlier SST, is kept for
// cluster's SST to resume from; when it is not, it says why (nothing to
// say when there is no staging).
func (s *Staging) takeOver(cluster string) (bool, string) {
	if _, err := os.Lstat(s.Dir); err != nil {
		return false, ""
	}
	m, err := readResume(s.Root)
	switch {
	case err != nil:
		return false, fmt.Sprintf("its marker %s: %v", filepath.Join(s.Root, ResumeName), err)
	case cluster == "":
		return false, "the donor did not say its cluster UUID"
	case m.Cluster != cluster:
		return false, fmt.Sprintf("it is of cluster %s, the donor of %s", m.Cluster, cluster)
	}
	if fi, err := os.Lstat(s.Dir); err != nil || !fi.IsDir() {
		return false, "it is not a directory"
	}
	// A delta's patches are indexed in the memory of the SST that made
	// them: they go, and their files are compared with the old ones anew.
	if err := os.RemoveAll(filepath.Join(s.Dir, PatchDirName)); err != nil {
		return false, fmt.Sprintf("remove its patches: %v", err)
	}
	return true, ""
}

// Keep ends this SST's use of the staging but leaves it, with its resume
// marker, for the next SST of the same cluster to resume from (Abort
// removes it). A staging without a marker (its donor said no cluster) is
// removed all the same: nothing could resume from it.
func (s *Staging) Keep() bool {
	if s == nil {
		return false
	}
	if _, err := readResume(s.Root); err != nil {
		s.Abort()
		return false
	}
	s.unlock()
	return true
}

// StagedBytes is the disk space the staging's files take.
func (s *Staging) StagedBytes() int64 {
	var n int64
	filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += allocated(fi)
		}
		return nil
	})
	return n
}

// DiscardResume removes a staging kept for resume in root, with its
// marker, saying why: the node no longer needs an SST (it is Synced). A
// running SST's staging is left alone.
func DiscardResume(root, why string, log *slog.Logger) error {
	dir := filepath.Join(filepath.Clean(root), StagingDirName)
	_, derr := os.Lstat(dir)
	_, merr := os.Lstat(filepath.Join(root, ResumeName))
	if derr != nil && merr != nil {
		return nil
	}
	lock, err := lockRoot(root)
	if err != nil {
		return nil // an SST works in it (or root is gone): not ours to remove
	}
	defer lock.Close()
	log.Info("removing the staging kept to resume an SST", slog.String("path", dir), slog.String("reason", why))
	os.Remove(filepath.Join(root, ResumeName))
	if err := os.RemoveAll(dir); err != nil {
		return Errorf(EACCES, "sst: remove %s: %w", dir, err)
	}
	return nil
}

// allocated is the disk space a file takes (a sparse file's holes none).
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// ResumedBytes is StagedBytes of a staging kept from an earlier SST, 0 for
// a fresh one.
func (s *Staging) ResumedBytes() int64 {
	if !s.Resumed {
		return 0
	}
	return s.StagedBytes()
}

// Unroute is the wire name a donor sends the file staged as rel in x
// under: Route's inverse, checked by Route itself.
func (p *Placement) Unroute(x *Staging, rel string) (string, bool) {
	base := filepath.Base(rel)
	binlog, _ := p.s.Binlog()
	var cands []string
	for tag := range p.Layout.Tags {
		if !KeepOnly(tag, binlog)(base) {
			cands = append(cands, "@"+tag+"/"+base)
		}
	}
	for name, e := range p.ext {
		if filepath.Base(e.Path) == base {
			cands = append(cands, name)
		}
	}
	cands = append(cands, rel)
	for _, c := range cands {
		if y, r, err := p.Route(c); err == nil && y == x && r == rel {
			return c, true
		}
	}
	return "", false
}
