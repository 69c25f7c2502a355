package endpoint

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "galera_supervisor"

// Metrics holds the supervisor's counters and serves them, with gauges
// read from the snapshot at scrape time, in the Prometheus text format.
// Its methods may be called on a nil *Metrics: they count nothing.
type Metrics struct {
	reg        *prometheus.Registry
	sstBytes   *prometheus.CounterVec
	sstSeconds *prometheus.CounterVec
	ssts       *prometheus.CounterVec
	keepalives *prometheus.CounterVec
	decisions  *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	requests   *prometheus.CounterVec
}

// SST results, the values of the result label.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
)

// Keepalive kinds, the values of the kind label.
const (
	KeepaliveExtend   = "extend_timeout" // EXTEND_TIMEOUT_USEC=
	KeepaliveWatchdog = "watchdog"       // WATCHDOG=1
)

// NewMetrics registers the metrics; snapshot and cfg give the gauges.
func NewMetrics(snapshot func() *Snapshot, cfg *Config) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		sstBytes:   counter("sst_bytes_total", "Bytes moved by the SSTs that ended, as their progress events counted them.", "method", "role"),
		sstSeconds: counter("sst_seconds_total", "Seconds the SSTs that ended took, from their first progress event to their last.", "method", "role"),
		ssts:       counter("ssts_total", "SSTs that ended, by result (succeeded, failed).", "method", "role", "result"),
		keepalives: counter("keepalives_total", "Keepalives sent to systemd: extend_timeout (EXTEND_TIMEOUT_USEC=) and watchdog (WATCHDOG=1).", "kind"),
		decisions:  counter("decisions_total", "Decisions with the peers on how to start the node, by action (join, wait, pc-recovery, bootstrap, give-up).", "action"),
		reloads:    counter("option_reloads_total", "Readings of the option files after an edit or SIGHUP, by result (applied, refused).", "result"),
		requests:   counter("http_requests_total", "Requests the endpoint answered, by path and status code.", "path", "code"),
	}
	m.reg.MustRegister(m.sstBytes, m.sstSeconds, m.ssts, m.keepalives, m.decisions, m.reloads, m.requests,
		&stateCollector{snapshot: snapshot, cfg: cfg},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SSTEnded counts an SST that ended.
func (m *Metrics) SSTEnded(method, role, result string, bytes int64, seconds float64) {
	if m == nil {
		return
	}
	if method == "" {
		method = "unknown"
	}
	m.ssts.WithLabelValues(method, role, result).Inc()
	m.sstBytes.WithLabelValues(method, role).Add(float64(max(bytes, 0)))
	m.sstSeconds.WithLabelValues(method, role).Add(max(seconds, 0))
}

// Keepalive counts a keepalive sent to systemd.
func (m *Metrics) Keepalive(kind string) {
	if m != nil {
		m.keepalives.WithLabelValues(kind).Inc()
	}
}

// Decision counts a decision logged.
func (m *Metrics) Decision(action string) {
	if m != nil {
		m.decisions.WithLabelValues(action).Inc()
	}
}

// Reload counts a reading of the option files.
func (m *Metrics) Reload(result string) {
	if m != nil {
		m.reloads.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) request(path string, code int) {
	if m != nil {
		m.requests.WithLabelValues(path, codeText(code)).Inc()
	}
}

func codeText(code int) string {
	switch code {
	case http.StatusOK:
		return "200"
	case http.StatusServiceUnavailable:
		return "503"
	case http.StatusNotFound:
		return "404"
	case http.StatusMethodNotAllowed:
		return "405"
	}
	return "other"
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// stateCollector turns the snapshot into gauges at each scrape.
type stateCollector struct {
	snapshot func() *Snapshot
	cfg      *Config
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

var (
	descUp            = desc("up", "1 when mariadbd answered the supervisor's last health check (within 5 s).")
	descReady         = desc("ready", "1 once the node was Synced and READY=1 went to systemd.")
	descNodeState     = desc("node_state", "wsrep_local_state: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced; 0 unknown.")
	descPhase         = desc("phase_info", "The supervisor's phase (the first word of STATUS=), as a label.", "phase")
	descClusterSize   = desc("cluster_size", "wsrep_cluster_size.")
	descClusterStatus = desc("cluster_status", "wsrep_cluster_status, one series per status, 1 for the current one.", "status")
	descLastCommitted = desc("last_committed", "wsrep_last_committed: the node's seqno.")
	descReadOnly      = desc("read_only", "1 when read_only is ON.")
	descMaintenance   = desc("maintenance", "1 while the node is in maintenance (drained; auto-bootstrap and give-ups paused).")
	descAvailable     = desc("available", "1 when the clustercheck at / answers 200.")
	descSSTDone       = desc("sst_progress_bytes", "Bytes moved so far by the SST under way.", "method", "role")
	descSSTTotal      = desc("sst_size_bytes", "Bytes the SST under way expects to move (0 when unknown).", "method", "role")
)

var clusterStatuses = []string{"Primary", "non-Primary", "Disconnected"}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descReady, descNodeState, descPhase, descClusterSize, descClusterStatus,
		descLastCommitted, descReadOnly, descMaintenance, descAvailable, descSSTDone, descSSTTotal} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if s == nil {
		gauge(descUp, 0)
		gauge(descAvailable, 0)
		return
	}
	up := s.fresh(now, StaleAfter)
	gauge(descUp, b(up))
	gauge(descReady, b(s.Ready))
	gauge(descMaintenance, b(s.Maintenance != nil))
	gauge(descAvailable, b(c.cfg.Clustercheck(s, now).OK))
	if s.Phase != "" {
		gauge(descPhase, 1, s.Phase)
	}
	if up {
		gauge(descNodeState, float64(s.Node.LocalState))
		gauge(descClusterSize, float64(s.Node.ClusterSize))
		gauge(descLastCommitted, float64(s.Node.LastCommitted))
		gauge(descReadOnly, b(s.Node.ReadOnly))
		known := false
		for _, st := range clusterStatuses {
			known = known || st == s.Node.ClusterStatus
			gauge(descClusterStatus, b(st == s.Node.ClusterStatus), st)
		}
		if !known && s.Node.ClusterStatus != "" {
			gauge(descClusterStatus, 1, s.Node.ClusterStatus)
		}
	} else {
		gauge(descNodeState, 0)
	}
	if t := s.SST; t != nil && t.Phase != "done" && t.Phase != "failed" {
		gauge(descSSTDone, float64(t.Done), t.Method, t.Role)
		gauge(descSSTTotal, float64(t.Total), t.Method, t.Role)
	}
}
