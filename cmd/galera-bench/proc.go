package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStat is what the bench reads from /proc/PID/stat.
type procStat struct {
	PID, PPID int
	Comm      string
	RSSPages  int64
	CPUTicks  int64 // utime+stime+cutime+cstime
}

// parseStat parses one /proc/PID/stat line. comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	var s procStat
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, fmt.Errorf("no comm in %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil || pid <= 0 {
		return s, fmt.Errorf("bad pid in %.40q", b)
	}
	s.PID, s.Comm = pid, string(b[open+1:end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return s, fmt.Errorf("pid %d: %d fields, want at least 24", pid, len(f)+2)
	}
	num := func(field int) (int64, error) { return strconv.ParseInt(f[field-3], 10, 64) }
	ppid, err := num(4)
	if err != nil {
		return s, fmt.Errorf("pid %d: ppid: %w", pid, err)
	}
	s.PPID = int(ppid)
	for _, field := range []int{14, 15, 16, 17} {
		v, err := num(field)
		if err != nil {
			return s, fmt.Errorf("pid %d: field %d: %w", pid, field, err)
		}
		s.CPUTicks += v
	}
	if s.RSSPages, err = num(24); err != nil {
		return s, fmt.Errorf("pid %d: rss: %w", pid, err)
	}
	return s, nil
}

// readProcs reads every process under root (normally /proc). Processes that
// exit while it reads are skipped.
func readProcs(root string) ([]procStat, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	ps := make([]procStat, 0, len(ents))
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue
		}
		s, err := parseStat(b)
		if err != nil {
			continue
		}
		ps = append(ps, s)
	}
	return ps, nil
}

func readStat(root string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// isBackup tells mariadb-backup apart: issue 4 excludes it from the RSS target.
func isBackup(comm string) bool {
	return comm == "mariadb-backup" || comm == "mariabackup" || comm == "xtrabackup"
}

// isServer is true for mariadbd itself, which a launcher may have as a child.
func isServer(comm string) bool { return comm == "mariadbd" || comm == "mysqld" }

// rssSampler follows the descendants of the donor's and the joiner's
// mariadbd and keeps the peaks of their RSS.
type rssSampler struct {
	root     string // /proc
	pageSize int64

	mu         sync.Mutex
	sides      map[string]int // side name -> mariadbd PID
	peakSide   map[string]int64
	peakBackup int64
	peakProc   int64
	peakName   string
	samples    int
}

func newRSSSampler(root string, sides map[string]int) *rssSampler {
	return &rssSampler{root: root, pageSize: int64(os.Getpagesize()), sides: sides, peakSide: map[string]int64{}}
}

// sample reads /proc once and updates the peaks. RSS per side is the sum
// over that side's SST processes at one instant.
func (s *rssSampler) sample() error {
	s.mu.Lock()
	sides := make(map[string]int, len(s.sides))
	for k, v := range s.sides {
		sides[k] = v
	}
	s.mu.Unlock()
	procs, err := s.descendants(sides)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := map[string]int64{}
	var backup int64
	for side, ps := range procs {
		for _, p := range ps {
			if isServer(p.Comm) {
				continue
			}
			rss := p.RSSPages * s.pageSize
			if isBackup(p.Comm) {
				backup += rss
				continue
			}
			sum[side] += rss
			if rss > s.peakProc {
				s.peakProc, s.peakName = rss, fmt.Sprintf("%s (%s)", p.Comm, side)
			}
		}
	}
	for side, v := range sum {
		s.peakSide[side] = max(s.peakSide[side], v)
	}
	s.peakBackup = max(s.peakBackup, backup)
	s.samples++
	return nil
}

// descendants lists every process below each side's PID. It follows the
// kernel's /proc/PID/task/TID/children lists, which costs a few reads per
// sample; without them it scans every process's stat.
func (s *rssSampler) descendants(sides map[string]int) (map[string][]procStat, error) {
	out := map[string][]procStat{}
	scan := false
	for side, pid := range sides {
		if pid <= 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.root, strconv.Itoa(pid), "task")); err != nil {
			scan = true
			break
		}
		seen := map[int]bool{pid: true}
		var walk func(pid, depth int)
		walk = func(pid, depth int) {
			tasks, _ := os.ReadDir(filepath.Join(s.root, strconv.Itoa(pid), "task"))
			for _, t := range tasks {
				b, err := os.ReadFile(filepath.Join(s.root, strconv.Itoa(pid), "task", t.Name(), "children"))
				if err != nil {
					continue
				}
				for _, f := range strings.Fields(string(b)) {
					child, err := strconv.Atoi(f)
					if err != nil || seen[child] {
						continue
					}
					seen[child] = true
					if st, err := readStat(s.root, child); err == nil {
						out[side] = append(out[side], st)
					}
					if depth < 64 {
						walk(child, depth+1)
					}
				}
			}
		}
		walk(pid, 0)
	}
	if !scan {
		return out, nil
	}
	ps, err := readProcs(s.root)
	if err != nil {
		return nil, err
	}
	parent := make(map[int]int, len(ps))
	for _, p := range ps {
		parent[p.PID] = p.PPID
	}
	out = map[string][]procStat{}
	for _, p := range ps {
		for q, hops := p.PPID, 0; q > 1 && hops < 64; q, hops = parent[q], hops+1 {
			side := ""
			for name, root := range sides {
				if root > 0 && q == root {
					side = name
				}
			}
			if side != "" {
				out[side] = append(out[side], p)
				break
			}
		}
	}
	return out, nil
}

// setSide changes which PID a side follows (the joiner's mariadbd is known
// only once started).
func (s *rssSampler) setSide(name string, pid int) {
	s.mu.Lock()
	s.sides[name] = pid
	s.mu.Unlock()
}

func (s *rssSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = s.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const mib = 1 << 20

// fill copies the peaks into r.
func (s *rssSampler) fill(r *Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.RSSDonorMiB = float64(s.peakSide["donor"]) / mib
	r.RSSJoinerMiB = float64(s.peakSide["joiner"]) / mib
	r.RSSPeakMiB = max(r.RSSDonorMiB, r.RSSJoinerMiB)
	r.RSSMaxProcMiB = float64(s.peakProc) / mib
	r.RSSMaxProc = s.peakName
	r.BackupRSSMiB = float64(s.peakBackup) / mib
	r.RSSSamples = s.samples
}

// loRxBytes reads the receive byte counter of lo from a /proc/net/dev file.
func loRxBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no lo line", path)
}

// treeSize sums the sizes of regular files under dir, as du -sb would count
// them, leaving out galera.cache: the payload a physical SST moves. Files
// that vanish while it walks are skipped.
func treeSize(dir string) (payload, all int64) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		all += info.Size()
		if d.Name() != "galera.cache" {
			payload += info.Size()
		}
		return nil
	})
	return payload, all
}
