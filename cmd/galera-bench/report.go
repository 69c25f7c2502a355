package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// cpMethod names the physical-limit row: cp -r of the donor's datadir, then sync.
const cpMethod = "cp -r"

// Result is one measured run. Seconds and MB/s use the baseline's
// definitions (stock-baseline.md): from starting the joiner's mariadbd to
// Synced, and (donor datadir bytes minus galera.cache) / seconds.
type Result struct {
	Method string `json:"method"` // as given in -methods, e.g. "mariabackup+lz4", or "cp -r"
	OK     bool   `json:"ok"`
	Err    string `json:"error,omitempty"`

	Seconds      float64 `json:"seconds"`       // to Synced; for cp -r: cp plus sync
	PayloadBytes int64   `json:"payload_bytes"` // donor datadir minus galera.cache; for cp -r: all bytes copied
	MBps         float64 `json:"mb_per_s"`      // PayloadBytes / 1e6 / Seconds

	// Donor write lock. LockProbeS is the longest time one tiny autocommit
	// write on the donor took among those begun while the donor was in the
	// Donor/Desynced state; LockLogS is the span the donor's error log shows
	// between the server flushing tables for the SST and the SST releasing
	// them (-1: the log shows none).
	LockProbeS   float64 `json:"lock_probe_s"`
	LockProbeAtS float64 `json:"lock_probe_at_s"` // when that write began, from the join's start
	LockLogS     float64 `json:"lock_log_s"`
	// The longest probe write of the whole join, whatever held it up (the
	// joiner's view change, its flow control while it catches up, I/O).
	ProbeMaxAnyS   float64 `json:"probe_max_any_s"`
	ProbeMaxAnyAtS float64 `json:"probe_max_any_at_s"`
	// When the donor was Donor/Desynced, from the join's start (0, 0: not seen).
	DonorFromS float64 `json:"donor_state_from_s"`
	DonorToS   float64 `json:"donor_state_to_s"`
	// The longest few probe writes: [start s from the join's start, seconds].
	ProbeStalls [][2]float64 `json:"probe_stalls,omitempty"`
	ProbeWrites int          `json:"probe_writes"`
	ProbeErrors int          `json:"probe_errors"`

	// Peak RSS, sampled from /proc. RSSPeakMiB is the larger of the two sides'
	// peaks of the summed RSS of every descendant of that side's mariadbd,
	// not counting mariadb-backup, whose own peak is BackupRSSMiB.
	RSSPeakMiB    float64 `json:"rss_peak_mib"`
	RSSDonorMiB   float64 `json:"rss_donor_mib"`
	RSSJoinerMiB  float64 `json:"rss_joiner_mib"`
	RSSMaxProcMiB float64 `json:"rss_max_process_mib"`
	RSSMaxProc    string  `json:"rss_max_process"`
	BackupRSSMiB  float64 `json:"mariadb_backup_rss_mib"`
	RSSSamples    int     `json:"rss_samples"`

	DonorCPUS  float64 `json:"donor_cpu_s"`  // donor mariadbd + waited children, during the run
	JoinerCPUS float64 `json:"joiner_cpu_s"` // joiner mariadbd + waited children
	LoBytes    int64   `json:"lo_rx_bytes"`  // change of lo rx_bytes: every process's traffic, not only this run's
	Cold       bool    `json:"cold"`         // page cache dropped before the run
	Files      int     `json:"files"`        // regular files in the donor's datadir
	// With -delta: the peak of the blocks allocated under the joiner's node
	// dir above what its stale datadir held when the run began.
	ExtraDiskBytes int64 `json:"extra_disk_bytes,omitempty"`
	// With -delta: what the joiner's log says differed.
	DeltaLine string `json:"delta_line,omitempty"`

	// With -runs > 1: every successful run's seconds, and how many failed.
	Runs   []float64 `json:"runs_seconds,omitempty"`
	Failed int       `json:"runs_failed,omitempty"`
}

// median picks the run with the median time among the successful ones (the
// slower of the two middle ones for an even count) and lists every run's
// seconds in it; with no success it returns the last failure.
func median(rs []Result) Result {
	var ok []Result
	var all []float64
	for _, r := range rs {
		if r.OK {
			ok = append(ok, r)
			all = append(all, r.Seconds)
		}
	}
	if len(ok) == 0 {
		return rs[len(rs)-1]
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Seconds < ok[j].Seconds })
	m := ok[len(ok)/2]
	if len(rs) > 1 {
		m.Runs = all
		m.Failed = len(rs) - len(ok)
	}
	return m
}

// Report is everything one bench run writes.
type Report struct {
	Started      time.Time `json:"started"`
	Host         string    `json:"host"`
	SizeBytes    int64     `json:"size_bytes"`    // requested bench.t size
	DatadirBytes int64     `json:"datadir_bytes"` // donor datadir after loading, galera.cache included
	PayloadBytes int64     `json:"payload_bytes"` // minus galera.cache
	LoadSeconds  float64   `json:"load_seconds"`  // 0 when reused
	PauseSeconds float64   `json:"pause_seconds"` // the disk's rest before each run
	// The lock probe on the idle donor before the first run: the noise floor.
	ProbeIdleMaxS   float64 `json:"probe_idle_max_s"`
	ProbeIdleWrites int     `json:"probe_idle_writes"`
	Files           int     `json:"files"`                  // regular files in the donor's datadir
	Tables          int     `json:"tables,omitempty"`       // -tables: the many-tables dataset
	Databases       int     `json:"databases,omitempty"`    // schemas the tables are spread over
	Floor           *Floor  `json:"create_floor,omitempty"` // what creating a file costs on this disk
	// -delta: the link's netem parameters, and bench.t's pages changed
	// while the joiner was down, of how many.
	Link         string   `json:"link,omitempty"`
	ChangedPct   float64  `json:"changed_pct,omitempty"`
	ChangedPages int64    `json:"changed_pages,omitempty"`
	Pages        int64    `json:"pages,omitempty"`
	Baseline     string   `json:"baseline,omitempty"` // -baseline: the other build's dir
	Results      []Result `json:"results"`
	Targets      []Target `json:"targets"`
	Notes        []string `json:"notes,omitempty"`
}

// Target is one "Done when" line of issues 3 and 4, checked against a run.
type Target struct {
	Issue  int     `json:"issue"` // 0: a -baseline comparison
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Value  float64 `json:"value"` // NaN when not measurable
	Limit  float64 `json:"limit"`
	Status string  `json:"status"` // PASS, MISS or N/A
	Why    string  `json:"why,omitempty"`
}

// MarshalJSON writes NaN values as null.
func (t Target) MarshalJSON() ([]byte, error) {
	type plain Target
	v := struct {
		plain
		Value *float64 `json:"value"`
	}{plain: plain(t)}
	if !math.IsNaN(t.Value) {
		v.Value = &t.Value
	}
	return json.Marshal(v)
}

const rssLimitMiB = 64

func find(rs []Result, method string) *Result {
	for i := range rs {
		if rs[i].Method == method && rs[i].OK {
			return &rs[i]
		}
	}
	return nil
}

// ratio returns a/b, or NaN when either is missing or b is not positive.
func ratio(a, b *Result, f func(*Result) float64) float64 {
	if a == nil || b == nil || f(b) <= 0 {
		return math.NaN()
	}
	return f(a) / f(b)
}

func seconds(r *Result) float64 { return r.Seconds }
func mbps(r *Result) float64    { return r.MBps }
func lock(r *Result) float64    { return r.LockProbeS }

// Evaluate checks the issues' targets. It reports; it asserts nothing.
func Evaluate(rs []Result) []Target {
	rsync, nc := find(rs, "rsync"), find(rs, "native-copy")
	cp := find(rs, cpMethod)
	mb, nb := find(rs, "mariabackup"), find(rs, "native-backup")
	le := func(issue int, name, want string, v, limit float64, why string) Target {
		t := Target{Issue: issue, Name: name, Want: want, Value: v, Limit: limit, Why: why}
		switch {
		case math.IsNaN(v):
			t.Status = "N/A"
		case v <= limit:
			t.Status = "PASS"
		default:
			t.Status = "MISS"
		}
		return t
	}
	ge := func(issue int, name, want string, v, limit float64, why string) Target {
		t := le(issue, name, want, v, limit, why)
		if t.Status != "N/A" {
			t.Status = map[bool]string{true: "PASS", false: "MISS"}[v >= limit]
		}
		return t
	}
	rss := func(r *Result) float64 {
		if r == nil || r.RSSSamples == 0 {
			return math.NaN()
		}
		return r.RSSPeakMiB
	}
	missing := func(names ...string) string {
		var m []string
		for _, n := range names {
			if find(rs, n) == nil {
				m = append(m, n)
			}
		}
		if len(m) == 0 {
			return ""
		}
		return "no successful run of " + strings.Join(m, ", ")
	}
	return []Target{
		le(3, "native-copy time / rsync time", "<= 0.40", ratio(nc, rsync, seconds), 0.40, missing("native-copy", "rsync")),
		ge(3, "native-copy MB/s / cp -r MB/s", ">= 0.85", ratio(nc, cp, mbps), 0.85, missing("native-copy", cpMethod)),
		le(3, "native-copy lock / rsync lock", "<= 0.25", ratio(nc, rsync, lock), 0.25, missing("native-copy", "rsync")),
		le(3, "native-copy SST peak RSS MiB", "<= 64", rss(nc), rssLimitMiB, missing("native-copy")),
		le(4, "native-backup time / mariabackup time", "<= 0.50", ratio(nb, mb, seconds), 0.50, missing("native-backup", "mariabackup")),
		le(4, "native-backup SST peak RSS MiB (without mariadb-backup)", "<= 64", rss(nb), rssLimitMiB, missing("native-backup")),
	}
}

// baselineLimit is the most a native method may slow down against the
// -baseline build: issues 16 and 18 want its speed unchanged, within 5 %.
const baselineLimit = 1.05

// EvaluateBaseline compares each native method with its METHOD@baseline
// run: this build's median time / the baseline's. It reports; it asserts
// nothing.
func EvaluateBaseline(rs []Result) []Target {
	var ts []Target
	for _, r := range rs {
		if !ran(rs, r.Method+baselineSuffix) {
			continue
		}
		t := Target{Name: r.Method + " vs baseline", Want: fmt.Sprintf("<= %.2f", baselineLimit), Limit: baselineLimit,
			Value: ratio(find(rs, r.Method), find(rs, r.Method+baselineSuffix), seconds)}
		t.Status, t.Why = status(t.Value, baselineLimit, rs, r.Method, r.Method+baselineSuffix)
		ts = append(ts, t)
	}
	return ts
}

// EvaluateFiles checks issue 21's targets for the dataset the run had:
// tables > 0 is the many-tables one. It reports; it asserts nothing.
func EvaluateFiles(rs []Result, tables int) []Target {
	rsync, nc := find(rs, "rsync"), find(rs, "native-copy")
	mb, nb := find(rs, "mariabackup"), find(rs, "native-backup")
	ncLimit, dataset := 0.35, "one table"
	if tables > 0 {
		ncLimit, dataset = 0.40, fmt.Sprintf("%d tables", tables)
	}
	nct := Target{Issue: 21, Name: "native-copy time / rsync time, " + dataset, Want: fmt.Sprintf("<= %.2f", ncLimit),
		Value: ratio(nc, rsync, seconds), Limit: ncLimit}
	nct.Status, nct.Why = status(nct.Value, ncLimit, rs, "native-copy", "rsync")
	nbt := Target{Issue: 21, Name: "native-backup time / mariabackup time, " + dataset, Want: "<= 0.30",
		Value: ratio(nb, mb, seconds), Limit: 0.30}
	nbt.Status, nbt.Why = status(nbt.Value, 0.30, rs, "native-backup", "mariabackup")
	if nb != nil && mb == nil && ran(rs, "mariabackup") {
		// Completing where stock fails is the target then.
		nbt.Status, nbt.Why = "PASS", "mariabackup failed, native-backup completed"
	}
	if nb == nil && ran(rs, "native-backup") && mb == nil && ran(rs, "mariabackup") {
		nbt.Status, nbt.Why = "MISS", "native-backup failed as mariabackup did"
	}
	return []Target{nct, nbt}
}

// status is PASS when v <= limit, MISS above, N/A (naming the methods
// without a successful run) when v is NaN.
func status(v, limit float64, rs []Result, methods ...string) (string, string) {
	switch {
	case math.IsNaN(v):
		var m []string
		for _, n := range methods {
			if find(rs, n) == nil {
				m = append(m, n)
			}
		}
		return "N/A", "no successful run of " + strings.Join(m, ", ")
	case v <= limit:
		return "PASS", ""
	}
	return "MISS", ""
}

// ran says whether method was run, successfully or not.
func ran(rs []Result, method string) bool {
	for _, r := range rs {
		if r.Method == method {
			return true
		}
	}
	return false
}

// WritePerFile prints each run's seconds per file of the donor's datadir,
// and what creating a file costs on this disk, when measured.
func WritePerFile(w io.Writer, rep *Report) error {
	if f := rep.Floor; f != nil {
		fmt.Fprintf(w, "creating a file on this disk (%d files of %d KiB): %.3f ms/file, %.3f ms/file with one syncfs at the end\n",
			f.Files, f.FileBytes>>10, f.CreateMs, f.CreateSyncMs)
	}
	for _, r := range rep.Results {
		if !r.OK || r.Files == 0 {
			continue
		}
		if _, err := fmt.Fprintf(w, "%-20s %.3f ms/file (%.1f s / %d files)\n", r.Method, r.Seconds*1e3/float64(r.Files), r.Seconds, r.Files); err != nil {
			return err
		}
	}
	return nil
}

// Ratios are the comparisons the README quotes, method by method.
type Ratios struct {
	VsRsync   float64 // time / rsync time
	VsCp      float64 // MB/s / cp -r MB/s
	LockRsync float64 // lock / rsync lock
	VsBackup  float64 // time / mariabackup time
}

func ratiosFor(rs []Result, r *Result) Ratios {
	return Ratios{
		VsRsync:   ratio(r, find(rs, "rsync"), seconds),
		VsCp:      ratio(r, find(rs, cpMethod), mbps),
		LockRsync: ratio(r, find(rs, "rsync"), lock),
		VsBackup:  ratio(r, find(rs, "mariabackup"), seconds),
	}
}

var tableHeader = []string{"method", "s to Synced", "MB/s", "lock s (probe)", "lock s (log)",
	"SST RSS MiB", "mariadb-backup RSS MiB", "x rsync time", "x cp -r MB/s", "x rsync lock", "x mariabackup time"}

// baselineColumn is the table's last column when rs has -baseline runs.
const baselineColumn = "x baseline time"

func hasBaseline(rs []Result) bool {
	for _, r := range rs {
		if strings.HasSuffix(r.Method, baselineSuffix) {
			return true
		}
	}
	return false
}

// header is the table's header for rs.
func header(rs []Result) []string {
	if hasBaseline(rs) {
		return append(tableHeader[:len(tableHeader):len(tableHeader)], baselineColumn)
	}
	return tableHeader
}

// vsBaseline is r's "x baseline time": its median time / its
// METHOD@baseline run's ("-" without one).
func vsBaseline(rs []Result, r *Result) string {
	if strings.HasSuffix(r.Method, baselineSuffix) {
		return "-"
	}
	return num(ratio(r, find(rs, r.Method+baselineSuffix), seconds), 2)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func tableRows(rs []Result) [][]string {
	var rows [][]string
	withBaseline := hasBaseline(rs)
	for i := range rs {
		r := &rs[i]
		if !r.OK {
			row := []string{r.Method, "FAILED", "-", "-", "-", "-", "-", "-", "-", "-", "-"}
			if withBaseline {
				row = append(row, "-")
			}
			rows = append(rows, row)
			continue
		}
		rt := ratiosFor(rs, r)
		row := []string{r.Method, num(r.Seconds, 1), num(r.MBps, 0)}
		if r.Method == cpMethod {
			row = append(row, "-", "-", "-", "-")
		} else {
			logLock := "-"
			if r.LockLogS >= 0 {
				logLock = num(r.LockLogS, 2)
			}
			backup := "-"
			if r.BackupRSSMiB > 0 {
				backup = num(r.BackupRSSMiB, 1)
			}
			rssv := "-"
			if r.RSSSamples > 0 {
				rssv = num(r.RSSPeakMiB, 1)
			}
			row = append(row, num(r.LockProbeS, 2), logLock, rssv, backup)
		}
		if r.Method == "rsync" {
			rt.VsRsync, rt.LockRsync = math.NaN(), math.NaN()
		}
		if r.Method == "mariabackup" {
			rt.VsBackup = math.NaN()
		}
		if r.Method == cpMethod {
			rt = Ratios{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		}
		row = append(row, num(rt.VsRsync, 2), num(rt.VsCp, 2), num(rt.LockRsync, 2), num(rt.VsBackup, 2))
		if withBaseline {
			row = append(row, vsBaseline(rs, r))
		}
		rows = append(rows, row)
	}
	return rows
}

// WriteTable prints the results as an aligned text table.
func WriteTable(w io.Writer, rs []Result) error {
	rows := append([][]string{header(rs)}, tableRows(rs)...)
	// Method names read better left-aligned: pad them before right-aligning.
	width := 0
	for _, row := range rows {
		width = max(width, len(row[0]))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range rows {
		row = append([]string{fmt.Sprintf("%-*s", width, row[0])}, row[1:]...)
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

// WriteMarkdown prints the results as a Markdown table, for the README.
func WriteMarkdown(w io.Writer, rs []Result) error {
	head := header(rs)
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---:"
	}
	seps[0] = "---"
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, row := range tableRows(rs) {
		if _, err := fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | ")); err != nil {
			return err
		}
	}
	return nil
}

// WriteTargets prints one PASS/MISS/N/A line per target.
func WriteTargets(w io.Writer, ts []Target) error {
	for _, t := range ts {
		v := num(t.Value, 2)
		line := fmt.Sprintf("%-4s issue %d: %s = %s (want %s)", t.Status, t.Issue, t.Name, v, t.Want)
		if t.Issue == 0 {
			if v != "-" {
				v += "x"
			}
			line = fmt.Sprintf("%-4s %s: %s time (want %s)", t.Status, t.Name, v, t.Want)
		}
		if t.Status == "N/A" && t.Why != "" {
			line += ": " + t.Why
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

var tsvHeader = []string{"method", "ok", "seconds", "payload_bytes", "mb_per_s", "lock_probe_s", "lock_probe_at_s", "lock_log_s",
	"probe_writes", "probe_errors", "rss_peak_mib", "rss_donor_mib", "rss_joiner_mib", "rss_max_process_mib",
	"rss_max_process", "mariadb_backup_rss_mib", "donor_cpu_s", "joiner_cpu_s", "lo_rx_bytes", "cold", "error"}

// WriteTSV writes one raw row per run.
func WriteTSV(w io.Writer, rs []Result) error {
	fmt.Fprintln(w, strings.Join(tsvHeader, "\t"))
	clean := func(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }
	for _, r := range rs {
		_, err := fmt.Fprintf(w, "%s\t%t\t%.3f\t%d\t%.1f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%.1f\t%.2f\t%.2f\t%d\t%t\t%s\n",
			r.Method, r.OK, r.Seconds, r.PayloadBytes, r.MBps, r.LockProbeS, r.LockProbeAtS, r.LockLogS,
			r.ProbeWrites, r.ProbeErrors, r.RSSPeakMiB, r.RSSDonorMiB, r.RSSJoinerMiB, r.RSSMaxProcMiB,
			clean(r.RSSMaxProc), r.BackupRSSMiB, r.DonorCPUS, r.JoinerCPUS, r.LoBytes, r.Cold, clean(r.Err))
		if err != nil {
			return err
		}
	}
	return nil
}

// The -delta targets of issue 21.
const (
	deltaTimeLimit = 0.10 // delta time / full native-copy time
	deltaDiskLimit = 0.10 // joiner's extra disk / datadir, strictly below
)

// EvaluateDelta checks issue 21's delta targets against a -delta run whose
// donor datadir held datadir bytes (without galera.cache).
func EvaluateDelta(rs []Result, datadir int64) []Target {
	d, full := find(rs, "native-copy delta"), find(rs, "native-copy full")
	tt := Target{Issue: 21, Name: "native-copy delta time / full native-copy time", Want: fmt.Sprintf("<= %.2f", deltaTimeLimit),
		Value: ratio(d, full, seconds), Limit: deltaTimeLimit}
	tt.Status, tt.Why = status(tt.Value, deltaTimeLimit, rs, "native-copy delta", "native-copy full")
	dt := Target{Issue: 21, Name: "joiner's extra disk during the delta SST / datadir", Want: fmt.Sprintf("< %.2f", deltaDiskLimit),
		Value: math.NaN(), Limit: deltaDiskLimit}
	if d != nil && datadir > 0 {
		dt.Value = float64(d.ExtraDiskBytes) / float64(datadir)
	}
	dt.Status, dt.Why = status(dt.Value, deltaDiskLimit, rs, "native-copy delta")
	if dt.Status == "PASS" && dt.Value >= deltaDiskLimit {
		dt.Status = "MISS"
	}
	return []Target{tt, dt}
}

// WriteDelta prints a -delta run: a line per method, then the targets.
func WriteDelta(w io.Writer, rep *Report) error {
	full, rsync := find(rep.Results, "native-copy full"), find(rep.Results, "rsync")
	fmt.Fprintf(w, "stale node rejoins over %s; bench.t %s, donor datadir %s (%s without galera.cache); %d of %d pages (%.1f %%) changed while it was down\n\n",
		rep.Link, human(rep.SizeBytes), human(rep.DatadirBytes), human(rep.PayloadBytes), rep.ChangedPages, rep.Pages, 100*float64(rep.ChangedPages)/float64(max(rep.Pages, 1)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\ts to Synced\tx full native-copy\tx rsync\tjoiner's extra disk\t% of datadir\tjoiner says")
	for i := range rep.Results {
		r := &rep.Results[i]
		if !r.OK {
			fmt.Fprintf(tw, "%s\tFAILED\t-\t-\t-\t-\t%s\n", r.Method, r.Err)
			continue
		}
		pct := math.NaN()
		if rep.PayloadBytes > 0 {
			pct = 100 * float64(r.ExtraDiskBytes) / float64(rep.PayloadBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Method, num(r.Seconds, 1), num(ratio(r, full, seconds), 3), num(ratio(r, rsync, seconds), 3),
			human(r.ExtraDiskBytes), num(pct, 1), r.DeltaLine)
	}
	tw.Flush()
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	return WriteTargets(w, rep.Targets)
}
