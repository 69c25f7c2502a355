package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// httpGet asks url with method and returns the status, the body and the
// Connection header's close.
func httpGet(t *testing.T, method, url string) (int, string, bool) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Close
}

// waitHTTP waits until url answers want; with refused, a refused
// connection counts too.
func waitHTTP(t *testing.T, ctx context.Context, url string, want int, refused bool) {
	t.Helper()
	var last string
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil && refused && errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered %d; last: %s", url, want, last)
}

// metricValue reads one sample of a metrics text, -1 when absent.
func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// promtoolCheck runs promtool check metrics (Debian's prometheus) on text.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatal("promtool not found (Debian's prometheus package)")
		}
		t.Log("promtool not found: metrics not linted")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// TestRealEndpoint runs two real nodes under the built supervisor with
// http-address set: node1 bootstraps, node2 joins by a native-copy SST.
// The endpoint answers clustercheck's way from the supervisor's own state
// (mariadbd's statement count does not follow the requests), /metrics
// passes promtool and counts the SST on both sides, and the maintenance
// mode drains the node and survives a restart of its supervisor.
func TestRealEndpoint(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 2, SSTMethod: "native-copy"})
	sv, err := c.Supervise(galeratest.SupervisorConfig{Binary: builtSupervisor(t), BootstrapWait: 5 * time.Second, HTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*galeratest.Node{c.Node(1), c.Node(2)}
	base := func(i int) string { return "http://" + sv.HTTPAddress(nodes[i]) }
	q := newQuorumRun(t, ctx, nodes)
	q.start(0, "--wsrep-new-cluster")
	q.waitAll(0)

	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		code, body, closed := httpGet(t, m, base(0)+"/")
		want := "MariaDB Galera Cluster Node is synced.\r\n"
		if m == "HEAD" {
			want = ""
		}
		if code != 200 || body != want || !closed {
			t.Errorf("%s node1 /: %d %q close=%v, want 200 %q close", m, code, body, closed, want)
		}
	}
	for path, want := range map[string]int{"/synced": 200, "/donor-ok": 200, "/primary-component": 200, "/health": 200} {
		if code, body, _ := httpGet(t, "GET", base(0)+path); code != want {
			t.Errorf("node1 %s: %d %s", path, code, body)
		}
	}

	// No SQL per request: 500 checks move mariadbd's statement count by
	// what the health loop (every 200 ms here) asks, not by 500.
	questions := func() int {
		s, err := nodes[0].QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='QUESTIONS'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(s)
		return n
	}
	q0, t0 := questions(), time.Now()
	for range 500 {
		if code, _, _ := httpGet(t, "GET", base(0)+"/"); code != 200 {
			t.Fatalf("node1 /: %d", code)
		}
	}
	dq, el := questions()-q0, time.Since(t0)
	t.Logf("500 checks in %v: mariadbd counted %d statements", el.Round(time.Millisecond), dq)
	if limit := 100 + int(30*el.Seconds()); dq > limit {
		t.Errorf("500 checks made mariadbd count %d statements in %v (more than %d): the endpoint queries the node", dq, el, limit)
	}

	// node2 joins by SST; the counters say so on both sides.
	q.start(1)
	q.waitAll(1)
	_, m2, _ := httpGet(t, "GET", base(1)+"/metrics")
	_, m1, _ := httpGet(t, "GET", base(0)+"/metrics")
	promtoolCheck(t, m1)
	promtoolCheck(t, m2)
	for _, tc := range []struct {
		node, role, text string
	}{{"node2", "joiner", m2}, {"node1", "donor", m1}} {
		n := metricValue(tc.text, `galera_supervisor_ssts_total{method="native-copy",result="succeeded",role="`+tc.role+`"}`)
		b := metricValue(tc.text, `galera_supervisor_sst_bytes_total{method="native-copy",role="`+tc.role+`"}`)
		s := metricValue(tc.text, `galera_supervisor_sst_seconds_total{method="native-copy",role="`+tc.role+`"}`)
		t.Logf("%s: SSTs %v, bytes %v, seconds %v", tc.node, n, b, s)
		if n != 1 || b < 1<<20 || s <= 0 {
			t.Errorf("%s: SST counters of the %s: ssts_total %v, sst_bytes_total %v, sst_seconds_total %v; want 1, >= 1 MiB, > 0",
				tc.node, tc.role, n, b, s)
		}
	}
	if v := metricValue(m2, "galera_supervisor_cluster_size"); v != 2 {
		t.Errorf("node2 cluster_size %v, want 2", v)
	}
	if v := metricValue(m2, "galera_supervisor_node_state"); v != 4 {
		t.Errorf("node2 node_state %v, want 4", v)
	}
	if v := metricValue(m2, `galera_supervisor_keepalives_total{kind="extend_timeout"}`); v < 1 {
		t.Errorf("node2 keepalives_total{extend_timeout} %v: a joiner by SST extends its start", v)
	}
	_, hb, _ := httpGet(t, "GET", base(1)+"/health")
	var h struct {
		Phase string `json:"phase"`
		SST   *struct {
			Role, Method, Phase string
		} `json:"sst"`
	}
	if err := json.Unmarshal([]byte(hb), &h); err != nil || h.Phase != "synced" || h.SST == nil || h.SST.Role != "joiner" || h.SST.Phase != "done" {
		t.Errorf("node2 /health: %v\n%s", err, hb)
	}

	// "galera-supervisor maintenance on", through the runtime directory:
	// drained, /primary-component still 200, status and the peers say
	// so; it survives a restart of the supervisor.
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, builtSupervisor(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("galera-supervisor %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	node2 := []string{"--defaults-file=" + nodes[1].ConfigFile, "--runtime-dir=" + filepath.Join(nodes[1].Dir, "run")}
	out := cli(append([]string{"maintenance", "on", "--reason", "kernel update"}, node2...)...)
	t.Logf("maintenance on:\n%s", out)
	if !strings.Contains(out, "maintenance: on since") || !strings.Contains(out, "the running supervisor applied it") {
		t.Errorf("maintenance on said:\n%s", out)
	}
	if code, body, _ := httpGet(t, "GET", base(1)+"/"); code != 503 || !strings.Contains(body, "in maintenance") {
		t.Errorf("node2 / in maintenance: %d %q", code, body)
	}
	if code, _, _ := httpGet(t, "GET", base(1)+"/primary-component"); code != 200 {
		t.Errorf("node2 /primary-component in maintenance: %d", code)
	}
	out = cli("status", "--cluster", "--defaults-file="+nodes[0].ConfigFile)
	t.Logf("status --cluster:\n%s", out)
	var cs struct {
		Nodes []struct {
			Address string
			State   *quorum.State
		}
	}
	if err := json.Unmarshal([]byte(cli("status", "--cluster", "--json", "--defaults-file="+nodes[0].ConfigFile)), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Nodes) != 2 {
		t.Fatalf("status --cluster: %d nodes, want 2", len(cs.Nodes))
	}
	for i, n := range cs.Nodes {
		s := n.State
		if s == nil || s.Phase != quorum.PhaseSynced || !s.Primary || s.Decision == nil || s.Maintenance != (i == 1) || !strings.HasPrefix(s.Status, "synced") {
			t.Errorf("status --cluster: node%d: %+v", i+1, s)
		}
	}
	if code := q.sups[1].stop(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("node2: exit %d", code)
	}
	q.start(1)
	q.waitAll(1)
	if code, body, _ := httpGet(t, "GET", base(1)+"/"); code != 503 || !strings.Contains(body, "in maintenance") {
		t.Errorf("node2 / after a restart in maintenance: %d %q", code, body)
	}
	if out := cli(append([]string{"maintenance"}, node2...)...); !strings.Contains(out, "kernel update") {
		t.Errorf("maintenance after a restart: %s", out)
	}
	cli(append([]string{"maintenance", "off"}, node2...)...)
	if code, body, _ := httpGet(t, "GET", base(1)+"/"); code != 200 {
		t.Errorf("node2 / after maintenance off: %d %q", code, body)
	}
	// A stop drains at once: 503 while mariadbd shuts down, then nothing.
	q.sups[1].cmd.Process.Signal(os.Interrupt)
	waitHTTP(t, ctx, base(1)+"/synced", 503, true)
	<-q.sups[1].exited
}
