package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// The supervisor measures every SST itself, from outside the SST's
// processes, so that a method that reports nothing (the stock scripts)
// gets the same keepalives and STATUS as the native methods: on the joiner
// the bytes landing in the node's directories (progress.DiskMeter), from
// mariadbd's start to READY, and on the donor the bytes its SST processes
// read (/proc/PID/io). A method that reports its own progress (the native
// ones) is what STATUS shows; the bytes landing extend the start either
// way.
const (
	// A scan of a large datadir costs: it takes at most a tenth of the time.
	scanShare = 10
)

// sstMeasure is the runner's measuring of the node's SSTs.
type sstMeasure struct {
	disk     *progress.DiskMeter
	scanning bool
	next     time.Time
	results  chan diskResult
	// unmeasurable: the last scan could read none of the node's
	// directories (before the first, they are taken as readable: it comes
	// within a second of the start, the SST monitor after 30 s).
	unmeasurable bool
	landed       int64 // bytes landed by the last scan
	base         int64 // bytes landed before this SST was seen
	based        bool
	methodAt     time.Time // when the SST method last reported its own progress
	// What was said once.
	errLogged, floorLogged, droppedLogged bool

	// stream counts what the joiner's SST processes read as it arrives.
	stream   procReads
	received int64

	donor  *donorMeasure
	follow *donorFollow
}

type diskResult struct {
	scan progress.DiskScan
	err  error
	took time.Duration
}

// scanEvery is how often the joiner's directories are scanned: as often
// as the keepalive may extend (Window/4), at most every second.
func (r *runner) scanEvery() time.Duration {
	return min(max(r.keep.Window/4, 100*time.Millisecond), time.Second)
}

// diskResults delivers the scans; nil before the first.
func (r *runner) diskResults() <-chan diskResult { return r.measure.results }

// measureTick starts a scan of the joiner's directories when one is due:
// from mariadbd's start until READY.
func (r *runner) measureTick(now time.Time) {
	m := &r.measure
	if r.ready || r.view.stopping {
		r.stopFollow()
		return
	}
	if !r.wsrep || m.scanning || now.Before(m.next) {
		return
	}
	if m.disk == nil {
		dirs := sst.DirsFrom(r.opts.Datadir(), func(o string) string { v, _ := r.opts.Get(o); return v })
		m.disk = &progress.DiskMeter{Roots: dirs.Roots()}
		m.results = make(chan diskResult, 1)
		m.stream.names = streamReaders
	}
	m.scanning = true
	d, out := m.disk, m.results
	go func() {
		t0 := time.Now()
		s, err := d.Scan()
		out <- diskResult{s, err, time.Since(t0)}
	}()
}

// diskScanned takes a scan's result: once an SST into this node began,
// bytes that landed, a file written or bytes its SST processes read extend
// the start until READY; while the SST runs and its method says nothing,
// the bytes landed are its progress.
func (r *runner) diskScanned(res diskResult) {
	m := &r.measure
	now := time.Now()
	m.scanning = false
	m.next = now.Add(max(r.scanEvery(), scanShare*res.took))
	if res.err != nil {
		m.unmeasurable = true
		if !m.errLogged {
			m.errLogged = true
			r.s.log.Warn("SST progress cannot be measured; mariadbd's SST-monitor extensions are relayed instead",
				slog.Any("error", res.err))
		}
		return
	}
	m.unmeasurable = false
	prev := m.landed
	m.landed = res.scan.Landed
	if r.ready || r.view.stopping {
		return
	}
	received := m.stream.total
	if pid := r.s.PID(); pid > 0 {
		received = m.stream.measure(descendants(pid))
	}
	moved := res.scan.Changed || received > m.received
	m.received = received
	// Only a join by SST: a start that waits (for a Primary Component,
	// say) is not kept alive by what InnoDB writes meanwhile.
	if moved && r.sstJoiner && r.keep.Advanced(now) {
		r.s.notify(notify.ExtendTimeout(r.keep.Window))
	}
	// A method that reported progress speaks for its SST to the end: a
	// measured tick in one of its quiet phases (verifying, moving) would
	// take STATUS back to receiving.
	if !r.joining() || r.sstJoinerEnded || !m.methodAt.IsZero() {
		return
	}
	if !m.based {
		m.base, m.based = prev, true
	}
	e := progress.Event{Role: string(sst.Joiner), Method: r.joinerMethod(), Phase: progress.PhaseReceiving,
		Done: res.scan.Landed - m.base, Time: now}
	r.followDonor()
	if d, addr := r.donation(); d != nil {
		e.Total, e.Peer = d.Total, string(sst.Donor)+" "+addr
	}
	r.progressEvent(e, true)
}

// joinerMethod is the method of the SST into this node: the script seen
// running, else wsrep_sst_method (mysqldump runs no joiner script).
func (r *runner) joinerMethod() string {
	if r.view.sstRunning && r.view.sstRole == string(sst.Joiner) {
		return r.view.sstMethod
	}
	if v, _ := r.opts.Get("wsrep-sst-method"); v != "" {
		return v
	}
	return "rsync"
}

// logicalSST notes an SST by mysqldump into this node, which runs no
// script on the joiner: mariadbd answers queries while the donor loads
// its dump, and its monitor first speaks after 30 s. A node that started
// without a position and is joining receives an SST, not an IST.
func (r *runner) logicalSST(n NodeState) {
	if r.ready || r.sstJoiner || r.startKnown || !r.wsrep || !strings.HasPrefix(n.Comment, "Joining") || r.joinerMethod() != "mysqldump" {
		return
	}
	r.s.log.Info("SST: joiner by mysqldump: the donor loads its dump into this server", slog.String("sst_role", string(sst.Joiner)), slog.String("sst_method", "mysqldump"))
	r.joinerSST()
}

// measuredDone takes the measured joiner SST out of STATUS once its
// script ended or mariadbd's monitor said it is over. Whether it
// succeeded is told by what mariadbd does next, so it is not "done".
func (r *runner) measuredDone() {
	r.measuredEnded(string(sst.Joiner))
}

func (r *runner) measuredEnded(role string) {
	if r.view.measured && r.view.progRole == role {
		r.view.measured, r.view.lastProg = false, time.Time{}
		r.say(true)
	}
}

// monitorExtend is the floor: mariadbd's SST monitor extends by a minute
// every 30 s whether or not a byte moves, so its extension is relayed only
// while the supervisor can measure nothing of the SST.
func (r *runner) monitorExtend(c notify.ChildMessage) {
	m := &r.measure
	if c.MonitorExtend <= 0 || r.ready || r.view.stopping || r.keep.Window <= 0 {
		return
	}
	if !m.unmeasurable {
		if !m.droppedLogged {
			m.droppedLogged = true
			r.s.log.Info("not relaying the SST monitor's extensions: the start is extended while SST bytes land",
				slog.Duration("monitor_extend", c.MonitorExtend), slog.Duration("stall_window", r.keep.Window))
		}
		return
	}
	if !m.floorLogged {
		m.floorLogged = true
		r.s.log.Warn("relaying mariadbd's SST-monitor extension as the floor: the SST cannot be measured, so a stalled SST is not detected",
			slog.Duration("monitor_extend", c.MonitorExtend))
	}
	r.s.notify(notify.ExtendTimeout(c.MonitorExtend))
}

// donorMeasure is a donor's SST as the supervisor measures it.
type donorMeasure struct {
	script         int // the SST script's PID
	started        time.Time
	method, joiner string
	total          int64
	reads          procReads
}

// procReads counts what an SST's processes of the given names read
// (rchar of /proc/PID/io), keeping the count of those that ended. With
// busiest, while none of them was seen, the busiest process of the SST
// stands for them.
type procReads struct {
	names   map[string]bool
	busiest bool
	reads   map[int]int64
	total   int64
}

// dataReaders are the programs that read the data a stock SST sends; the
// others in its pipeline (pv, socat, the shell) pass the same bytes on.
var dataReaders = map[string]bool{
	"rsync": true, "mariadb-backup": true, "mariabackup": true, "mariadb-dump": true, "mysqldump": true,
}

// streamReaders are the programs of a joiner's stock SST that read what
// arrives (and mariadb-backup --prepare, which reads what arrived):
// mbstream writes a file only when a whole chunk (10 MiB) is in, so on a
// slow link they move when the datadir does not.
var streamReaders = map[string]bool{
	"socat": true, "nc": true, "ncat": true, "rsync": true, "mbstream": true, "xbstream": true,
	"stunnel": true, "stunnel4": true, "mariadb-backup": true, "mariabackup": true,
}

// donorScan measures the donor's SST whose script is p, and publishes it
// to the peers.
func (r *runner) donorScan(p sstProc) {
	m := &r.measure
	d := m.donor
	if d == nil || d.script != p.pid {
		d = &donorMeasure{script: p.pid, method: p.method, joiner: p.address, started: time.Now(),
			reads: procReads{names: dataReaders, busiest: true}}
		dirs := sst.DirsFrom(r.opts.Datadir(), func(o string) string { v, _ := r.opts.Get(o); return v })
		if s, err := (&progress.DiskMeter{Roots: dirs.Roots()}).Scan(); err == nil {
			d.total = s.Bytes
		}
		m.donor = d
	}
	sent := d.reads.measure(descendants(p.pid))
	r.coord.update(func(st *quorum.State) {
		st.Donation = &quorum.Donation{Method: d.method, Joiner: d.joiner, Sent: sent, Total: d.total}
	})
	if m.methodAt.After(d.started) {
		return // the method reports its own progress
	}
	r.progressEvent(progress.Event{Role: string(sst.Donor), Method: d.method, Phase: progress.PhaseSending,
		Done: sent, Total: d.total, Peer: string(sst.Joiner) + " " + d.joiner, Time: time.Now()}, true)
}

// measure reads the processes among procs and returns the count, which
// never goes down.
func (c *procReads) measure(procs []procStat) int64 {
	if c.reads == nil {
		c.reads = map[int]int64{}
	}
	var busiest int64
	for _, p := range procs {
		rchar, err := readRchar(p.PID)
		if err != nil {
			continue
		}
		busiest = max(busiest, rchar)
		if c.names[procComm(p.PID)] {
			c.reads[p.PID] = max(c.reads[p.PID], rchar)
		}
	}
	var sum int64
	for _, n := range c.reads {
		sum += n
	}
	if len(c.reads) == 0 && c.busiest {
		sum = busiest
	}
	c.total = max(c.total, sum)
	return c.total
}

// donorEnded clears what the peers see of a donation, and ends it in
// STATUS.
func (r *runner) donorEnded() {
	m := &r.measure
	if m.donor == nil {
		return
	}
	d := m.donor
	m.donor = nil
	r.coord.update(func(st *quorum.State) { st.Donation = nil })
	r.s.log.Info("donor: SST ended; sst_bytes is what its processes read",
		slog.String("sst_role", string(sst.Donor)), slog.String("sst_method", d.method), slog.String("sst_peer", d.joiner), slog.Int64("sst_bytes", d.reads.total))
	r.measuredEnded(string(sst.Donor))
}

// readRchar reads the bytes pid has read (rchar: from files, pipes and
// sockets, whether or not the page cache served them) from /proc/PID/io.
func readRchar(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	return parseRchar(b)
}

func parseRchar(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no rchar in /proc/PID/io")
}

func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// donorFollow asks the peers, while an SST comes into this node, what
// their donor sends: the total, for a % and an ETA.
type donorFollow struct {
	mu     sync.Mutex
	d      *quorum.Donation
	addr   string // the donor's peer address
	cancel context.CancelFunc
}

// followPoll is how often a joiner asks its peers about its donor.
const followPoll = 2 * time.Second

// followDonor starts asking the peers, when the node coordinates.
func (r *runner) followDonor() {
	if r.coord == nil || r.measure.follow != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.coord.ctx)
	f := &donorFollow{cancel: cancel}
	r.measure.follow = f
	own, _ := r.opts.Get("wsrep-sst-receive-address")
	go f.run(ctx, *r.coord.cfg, own)
}

func (r *runner) stopFollow() {
	if f := r.measure.follow; f != nil {
		f.cancel()
	}
}

// donation is what this node's donor last said of its SST, nil while
// unknown.
func (r *runner) donation() (*quorum.Donation, string) {
	f := r.measure.follow
	if f == nil {
		return nil, ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d, f.addr
}

func (f *donorFollow) run(ctx context.Context, cfg quorum.Config, own string) {
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		var mu sync.Mutex
		seen := map[string]*quorum.Donation{}
		var wg sync.WaitGroup
		for _, addr := range cfg.Peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, err := quorum.Query(ctx, addr, cfg.Auth); err == nil && st.Donation != nil {
					mu.Lock()
					seen[addr] = st.Donation
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if addr, d := pickDonation(seen, own); d != nil {
			f.mu.Lock()
			f.d, f.addr = d, addr
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pickDonation finds the donation to this node among the peers': the one
// sent to own (wsrep_sst_receive_address), else the only one.
func pickDonation(seen map[string]*quorum.Donation, own string) (string, *quorum.Donation) {
	if own != "" && !strings.EqualFold(own, "AUTO") {
		if !strings.Contains(own, ":") {
			own += ":4444"
		}
		for addr, d := range seen {
			if j, _, _ := strings.Cut(d.Joiner, "/"); j == own {
				return addr, d
			}
		}
	}
	if len(seen) == 1 {
		for addr, d := range seen {
			return addr, d
		}
	}
	return "", nil
}
