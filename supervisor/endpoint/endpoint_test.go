package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
)

func synced(now time.Time) *Snapshot {
	return &Snapshot{Phase: "synced", Status: "synced", Ready: true, Wsrep: true, Answering: true, CheckedAt: now,
		Node: Node{LocalState: StateSynced, LocalStateComment: "Synced", ClusterStatus: "Primary", ClusterSize: 3, Ready: true}}
}

func TestClustercheck(t *testing.T) {
	now := time.Now()
	with := func(f func(*Snapshot)) *Snapshot { s := synced(now); f(s); return s }
	donor := with(func(s *Snapshot) { s.Node.LocalState, s.Node.LocalStateComment = StateDonor, "Donor/Desynced" })
	readOnly := with(func(s *Snapshot) { s.Node.ReadOnly = true })
	tests := []struct {
		name        string
		snap        *Snapshot
		donorOK, ro bool
		want        bool
		body        string
		synced, dok bool
		primary     bool
	}{
		{"synced", synced(now), false, true, true, bodySynced, true, true, true},
		{"nil", nil, false, true, false, bodyNotSynced, false, false, false},
		{"donor", donor, false, true, false, bodyNotSynced, false, true, true},
		{"donor available", donor, true, true, true, bodySynced, false, true, true},
		{"joined", with(func(s *Snapshot) { s.Node.LocalState, s.Node.LocalStateComment = StateJoined, "Joined" }), true, true, false, bodyNotSynced, false, false, true},
		{"joining", with(func(s *Snapshot) { s.Node.LocalState = StateJoining }), true, true, false, bodyNotSynced, false, false, true},
		{"non-primary", with(func(s *Snapshot) { s.Node.ClusterStatus = "non-Primary" }), true, true, false, bodyNotSynced, false, false, false},
		{"read only allowed", readOnly, false, true, true, bodySynced, true, true, true},
		{"read only refused", readOnly, false, false, false, bodyReadOnly, true, true, true},
		{"maintenance", with(func(s *Snapshot) { s.Maintenance = &maintenance.State{Since: now} }), true, true, false, bodyMaintenance, false, false, true},
		{"stopping", with(func(s *Snapshot) { s.Stopping = true }), true, true, false, bodyNotSynced, false, false, false},
		{"not answering", with(func(s *Snapshot) { s.Answering = false }), true, true, false, bodyNotSynced, false, false, false},
		{"stale", with(func(s *Snapshot) { s.CheckedAt = now.Add(-StaleAfter - time.Second) }), true, true, false, bodyNotSynced, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{AvailableWhenDonor: tt.donorOK, AvailableWhenReadonly: tt.ro}
			v := cfg.Clustercheck(tt.snap, now)
			if v.OK != tt.want || v.Body != tt.body {
				t.Errorf("Clustercheck = %v %q (%s), want %v %q", v.OK, v.Body, v.Why, tt.want, tt.body)
			}
			if got := Synced(tt.snap, now).OK; got != tt.synced {
				t.Errorf("Synced = %v, want %v", got, tt.synced)
			}
			if got := DonorOK(tt.snap, now).OK; got != tt.dok {
				t.Errorf("DonorOK = %v, want %v", got, tt.dok)
			}
			if got := PrimaryComponent(tt.snap, now).OK; got != tt.primary {
				t.Errorf("PrimaryComponent = %v, want %v", got, tt.primary)
			}
		})
	}
}

func TestConfigFrom(t *testing.T) {
	look := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		gs      map[string]string
		addr    string
		donor   bool
		ro      bool
		wantErr string
	}{
		{gs: map[string]string{}, ro: true},
		{gs: map[string]string{"http-address": "127.0.0.1:9200"}, addr: "127.0.0.1:9200", ro: true},
		{gs: map[string]string{"http-address": ":9200"}, addr: ":9200", ro: true},
		{gs: map[string]string{"http-address": "[::1]:9200", "available-when-donor": "1", "available-when-readonly": "0"}, addr: "[::1]:9200", donor: true},
		{gs: map[string]string{"http-address": "x"}, wantErr: "[galera-supervisor] http-address=x: want host:port"},
		{gs: map[string]string{"http-address": "h:99999"}, wantErr: "bad port"},
		{gs: map[string]string{"available-when-donor": "maybe"}, wantErr: "[galera-supervisor] available-when-donor=maybe: want 0 or 1"},
		{gs: map[string]string{"http-verify-client": "on"}, wantErr: "needs http-tls = on"},
		{gs: map[string]string{"http-tls": "on"}, wantErr: "[galera-supervisor] http-tls=on: needs a certificate ([sst] tcert)"},
	}
	for _, tt := range tests {
		c, err := ConfigFrom(look(tt.gs), look(nil))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.gs, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.gs, err)
		}
		if c.Address != tt.addr || c.AvailableWhenDonor != tt.donor || c.AvailableWhenReadonly != tt.ro {
			t.Errorf("%v: got %+v", tt.gs, c)
		}
	}
}

// serve runs a Server on loopback for snap.
func serve(t *testing.T, cfg *Config, snap *atomic.Pointer[Snapshot]) (string, *Metrics) {
	t.Helper()
	cfg.Address = "127.0.0.1:0"
	m := NewMetrics(snap.Load, cfg)
	s, err := Listen(cfg, snap.Load, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + s.Addr().String(), m
}

func do(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServeClustercheck(t *testing.T) {
	var snap atomic.Pointer[Snapshot]
	base, _ := serve(t, &Config{AvailableWhenReadonly: true}, &snap)

	resp, body := do(t, "GET", base+"/")
	if resp.StatusCode != 503 || body != bodyNotSynced {
		t.Errorf("before any snapshot: %d %q", resp.StatusCode, body)
	}
	snap.Store(synced(time.Now()))
	for _, m := range []string{"GET", "HEAD", "OPTIONS", "POST"} {
		resp, body := do(t, m, base+"/")
		want := bodySynced
		if m == "HEAD" {
			want = ""
		}
		if resp.StatusCode != 200 || body != want {
			t.Errorf("%s /: %d %q, want 200 %q", m, resp.StatusCode, body, want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("%s /: Content-Type %q", m, ct)
		}
		if !resp.Close {
			t.Errorf("%s /: no Connection: close", m)
		}
		if resp.ContentLength != int64(len(bodySynced)) {
			t.Errorf("%s /: Content-Length %d", m, resp.ContentLength)
		}
	}
	s := synced(time.Now())
	s.Maintenance = &maintenance.State{Since: time.Now(), By: "root"}
	snap.Store(s)
	if resp, body := do(t, "GET", base+"/"); resp.StatusCode != 503 || body != bodyMaintenance {
		t.Errorf("maintenance: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", base+"/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope: %d", resp.StatusCode)
	}
}

func TestServeRolesAndHealth(t *testing.T) {
	var snap atomic.Pointer[Snapshot]
	base, _ := serve(t, &Config{AvailableWhenReadonly: true}, &snap)
	s := synced(time.Now())
	s.Node.LocalState, s.Node.LocalStateComment = StateDonor, "Donor/Desynced"
	s.SST = &SST{Role: "donor", Method: "native-backup", Phase: "sending", Done: 10, Total: 100}
	snap.Store(s)
	for path, want := range map[string]int{"/synced": 503, "/donor-ok": 200, "/primary-component": 200, "/health": 200} {
		for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
			if resp, _ := do(t, m, base+path); resp.StatusCode != want {
				t.Errorf("%s %s: %d, want %d", m, path, resp.StatusCode, want)
			}
		}
		if resp, _ := do(t, "DELETE", base+path); resp.StatusCode != 405 {
			t.Errorf("DELETE %s: %d, want 405", path, resp.StatusCode)
		}
	}
	resp, body := do(t, "GET", base+"/health")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/health Content-Type %q", ct)
	}
	var h struct {
		Phase        string  `json:"phase"`
		Node         Node    `json:"node"`
		SST          *SST    `json:"sst"`
		Clustercheck Verdict `json:"clustercheck"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health: %v: %s", err, body)
	}
	if h.Phase != "synced" || h.Node.LocalState != StateDonor || h.SST == nil || h.SST.Done != 10 || h.Clustercheck.OK {
		t.Errorf("/health: %s", body)
	}
}

// TestPromtool checks /metrics with promtool check metrics (Debian's
// prometheus package), with every metric family present.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatal("promtool not found (apt-get install prometheus)")
		}
		t.Skip("promtool not found")
	}
	var snap atomic.Pointer[Snapshot]
	base, m := serve(t, &Config{AvailableWhenReadonly: true}, &snap)
	s := synced(time.Now())
	s.SST = &SST{Role: "joiner", Method: "native-copy", Phase: "receiving", Done: 10, Total: 100}
	s.Maintenance = &maintenance.State{Since: time.Now()}
	snap.Store(s)
	m.SSTEnded("native-copy", "joiner", ResultSucceeded, 1<<20, 2.5)
	m.SSTEnded("native-backup", "donor", ResultFailed, 10, 0.5)
	m.Keepalive(KeepaliveExtend)
	m.Keepalive(KeepaliveWatchdog)
	m.Decision("join")
	m.Reload("applied")
	do(t, "GET", base+"/")
	_, body := do(t, "GET", base+"/metrics")
	for _, want := range []string{
		`galera_supervisor_ssts_total{method="native-copy",result="succeeded",role="joiner"} 1`,
		`galera_supervisor_sst_bytes_total{method="native-copy",role="joiner"} 1.048576e+06`,
		`galera_supervisor_sst_seconds_total{method="native-backup",role="donor"} 0.5`,
		`galera_supervisor_keepalives_total{kind="extend_timeout"} 1`,
		`galera_supervisor_decisions_total{action="join"} 1`,
		`galera_supervisor_option_reloads_total{result="applied"} 1`,
		`galera_supervisor_node_state 4`,
		`galera_supervisor_cluster_size 3`,
		`galera_supervisor_cluster_status{status="Primary"} 1`,
		`galera_supervisor_cluster_status{status="non-Primary"} 0`,
		`galera_supervisor_maintenance 1`,
		`galera_supervisor_available 0`,
		`galera_supervisor_sst_progress_bytes{method="native-copy",role="joiner"} 10`,
		`galera_supervisor_http_requests_total{code="503",path="/"} 1`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// TestServeTLS: http-tls serves HTTPS with the [sst] certificate, and
// http-verify-client refuses a client without a certificate of the [sst]
// CA, or with one of another CA.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "cluster-ca")
	cert, key := ca.MustIssue(t, dir, "node1")
	ccert, ckey := ca.MustIssue(t, dir, "prometheus")
	other := testutil.MustCA(t, filepath.Join(dir, "other"), "other-ca")
	ocert, okey := other.MustIssue(t, filepath.Join(dir, "other"), "intruder")
	look := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cfg, err := ConfigFrom(look(map[string]string{"http-address": "127.0.0.1:9200", "http-tls": "on", "http-verify-client": "on"}),
		look(map[string]string{"tcert": cert, "tkey": key, "tca": ca.File}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Address = "127.0.0.1:0" // any free port
	var snap atomic.Pointer[Snapshot]
	snap.Store(synced(time.Now()))
	s, err := Listen(cfg, snap.Load, NewMetrics(snap.Load, cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	pem, _ := os.ReadFile(ca.File)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	get := func(certFile, keyFile string) (int, error) {
		tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if certFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + s.Addr().String() + "/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(ccert, ckey); err != nil || code != 200 {
		t.Errorf("client of the CA: %d %v, want 200", code, err)
	}
	if _, err := get("", ""); err == nil {
		t.Error("a client without a certificate was served")
	}
	if _, err := get(ocert, okey); err == nil {
		t.Error("a client with another CA's certificate was served")
	}
	if resp, err := http.Get("http://" + s.Addr().String() + "/"); err == nil {
		if resp.Body.Close(); resp.StatusCode == 200 {
			t.Error("plain HTTP was served 200 on a TLS endpoint")
		}
	}
}
