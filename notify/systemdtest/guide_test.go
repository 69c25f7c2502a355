package systemdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// guideStep is one block of docs/operations.md's "A new 3-node cluster":
// an sh block runs on the nodes its first line names ("# on every node",
// "# on node1", "# on node2, node3"), an ini block is the file its first
// line names, written on every node.
type guideStep struct {
	sh       bool
	nodes    []int // 0-based, in the order named; nil: every node
	parallel bool  // "# on every node, at once"
	path     string
	body     string // the commands, or the file
}

// guideSteps extracts the blocks of the section under heading, in order,
// up to the next heading.
func guideSteps(t *testing.T, heading string) []guideStep {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/operations.md: no section %q", heading)
	}
	for _, h := range []string{"\n## ", "\n### "} {
		if i := strings.Index(sec, h); i >= 0 {
			sec = sec[:i]
		}
	}
	var steps []guideStep
	for {
		_, rest, ok := strings.Cut(sec, "```")
		if !ok {
			break
		}
		lang, rest, _ := strings.Cut(rest, "\n")
		body, after, ok := strings.Cut(rest, "```\n")
		if !ok {
			t.Fatalf("docs/operations.md: unterminated %s block", lang)
		}
		sec = after
		first, _, _ := strings.Cut(body, "\n")
		switch lang {
		case "sh":
			st := guideStep{sh: true, body: body}
			who, ok := strings.CutPrefix(first, "# on ")
			if !ok {
				t.Fatalf("docs/operations.md: an sh block starts %q, not \"# on <nodes>\"", first)
			}
			who, st.parallel = strings.CutSuffix(who, ", at once")
			if who != "every node" {
				for _, n := range strings.Split(who, ", ") {
					var i int
					if _, err := fmt.Sscanf(n, "node%d", &i); err != nil || i < 1 || i > 3 {
						t.Fatalf("docs/operations.md: %q names no node", first)
					}
					st.nodes = append(st.nodes, i-1)
				}
			}
			steps = append(steps, st)
		case "ini":
			path, _, ok := strings.Cut(strings.TrimPrefix(first, "# "), ":")
			if !ok || !strings.HasPrefix(path, "/etc/") {
				t.Fatalf("docs/operations.md: an ini block starts %q, not \"# /etc/...: \"", first)
			}
			steps = append(steps, guideStep{path: path, body: body})
		default:
			t.Fatalf("docs/operations.md: a %q block in the new-cluster section", lang)
		}
	}
	if len(steps) < 3 {
		t.Fatalf("docs/operations.md: %d blocks in %q", len(steps), heading)
	}
	return steps
}

// TestSystemdOperationsGuide boots three machines on the host's network
// (each node on its own loopback address: 10.0.0.1N of the guide is
// 127.0.2.1N) and runs the commands of docs/operations.md's "A new 3-node
// cluster" as written, in order, on the nodes each block names; "scp
// node1:F F" copies the file from node1. The result must be a cluster of
// three under galera-supervisor.service.
func TestSystemdOperationsGuide(t *testing.T) {
	Require(t)
	deb, _ := packages(t)
	var ms [3]*Machine
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i] = Boot(t, Config{Name: fmt.Sprintf("gs-guide%d", i+1), HostNetwork: true,
				BindRO: []string{filepath.Dir(deb) + ":/opt/dist"}})
		}()
	}
	wg.Wait()
	for _, m := range ms {
		if m == nil {
			t.FailNow() // Boot failed (it marked the test)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The machines' root is an overlay (--volatile=overlay) whose lower
	// layer holds Debian's initial /var/lib/mysql, and overlayfs refuses to
	// rename a directory of the lower layer (EXDEV), which a joiner's swap
	// does. A real host's datadir is one filesystem: copy it up first.
	for _, m := range ms {
		if out, err := m.Exec(ctx, "sh", "-ec", "cp -a /var/lib/mysql /var/lib/mysql.up && rm -rf /var/lib/mysql && mv /var/lib/mysql.up /var/lib/mysql"); err != nil {
			t.Fatalf("copy up /var/lib/mysql: %v\n%s", err, out)
		}
	}
	g := &guide{t: t, ms: ms}
	g.run(ctx, guideSteps(t, "## A new 3-node cluster"))
	g.checkCluster(ctx)
	for i := 1; i < 3; i++ {
		if j := ms[i].Journal(ctx, "galera-supervisor.service"); !strings.Contains(j, "SST phase sst_role=joiner sst_method=native-copy sst_phase=done") || !strings.Contains(j, "starting mariadbd decision=join") {
			t.Errorf("node%d did not join by decision and a native-copy SST:\n%s", i+1, j)
		}
	}
	if t.Failed() {
		return
	}

	// TLS, in the full restart the guide gives; the certificates are the
	// operator's PKI's, here a test CA's.
	ca, err := galeratest.NewCA(t.TempDir(), "guide-ca")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		name := fmt.Sprintf("node%d", i+1)
		cert, key, err := ca.Issue(t.TempDir(), name, fmt.Sprintf("127.0.2.1%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{ca.File: "ca.pem", cert: name + ".pem", key: name + ".key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644) // certificates are public; the guide's commands give the key its owner and mode
			if strings.HasSuffix(dst, ".key") {
				mode = 0o600
			}
			if err := m.WriteFile("/etc/mysql/galera-supervisor/"+dst, b, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	restart := time.Now()
	g.run(ctx, guideSteps(t, "### TLS"))
	t.Logf("TLS: the full restart took %s", time.Since(restart).Round(100*time.Millisecond))
	g.checkCluster(ctx)
	for i, m := range ms {
		if j := m.Journal(ctx, "galera-supervisor.service"); !strings.Contains(j, `auth="mutual TLS and shared secret"`) {
			t.Errorf("node%d: the supervisor does not answer its peers with mutual TLS:\n%s", i+1, j)
		}
	}
}

// guide runs docs/operations.md's blocks on three machines.
type guide struct {
	t  *testing.T
	ms [3]*Machine
}

// addr maps the guide's addresses to the machines': 10.0.0.1N, 127.0.2.1N.
func addr(s string) string { return strings.ReplaceAll(s, "10.0.0.", "127.0.2.") }

func (g *guide) run(ctx context.Context, steps []guideStep) {
	t := g.t
	for _, st := range steps {
		nodes := st.nodes
		if nodes == nil {
			nodes = []int{0, 1, 2}
		}
		if !st.sh {
			for _, i := range nodes {
				body := st.body
				if strings.Contains(body, "node1's") {
					// Each node's own name and address, as the guide says.
					body = strings.ReplaceAll(body, "node1", fmt.Sprintf("node%d", i+1))
					body = strings.ReplaceAll(body, "10.0.0.11", fmt.Sprintf("10.0.0.1%d", i+1))
				}
				if err := g.ms[i].WriteFile(st.path, []byte(addr(body)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if !st.parallel {
			for _, i := range nodes {
				if err := g.runBlock(ctx, i, st.body); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for k, i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = g.runBlock(ctx, i, st.body)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// runBlock runs the lines of an sh block on node i, one by one, in the
// directory of the .deb; "scp node1:F F" copies F from node1.
func (g *guide) runBlock(ctx context.Context, i int, body string) error {
	m := g.ms[i]
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); f[0] == "scp" {
			src, ok := strings.CutPrefix(f[1], "node1:")
			if len(f) != 3 || !ok {
				return fmt.Errorf("docs/operations.md: %q: only scp node1:F F is understood", line)
			}
			b, err := os.ReadFile(g.ms[0].Path(src))
			if err != nil {
				return err
			}
			if err := m.WriteFile(f[2], b, 0o600); err != nil {
				return err
			}
			continue
		}
		start := time.Now()
		out, err := m.Exec(ctx, "sh", "-ec", "cd /opt/dist && "+addr(line))
		g.t.Logf("node%d: %s (%s)", i+1, line, time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("node%d: %s: %v\n%s\n%s", i+1, line, err, out, m.Journal(ctx, "galera-supervisor.service"))
		}
	}
	return nil
}

// checkCluster: every node Synced in a cluster of three, under
// galera-supervisor.service.
func (g *guide) checkCluster(ctx context.Context) {
	t, ms := g.t, g.ms
	for i, m := range ms {
		out, err := m.Exec(ctx, "galera-supervisor", "status")
		if err != nil || !strings.Contains(out, "galera-supervisor.service") || !strings.Contains(out, "Synced, Primary, cluster size 3") {
			t.Errorf("node%d: galera-supervisor status: %v\n%s", i+1, err, out)
		}
		if i == 2 {
			t.Logf("node3: galera-supervisor status:\n%s", out)
		}
		pid, _ := m.Show(ctx, "galera-supervisor.service", "MainPID")
		if comm, _ := os.ReadFile(m.Path("/proc/" + pid + "/comm")); strings.TrimSpace(string(comm)) != "galera-supervis" {
			t.Errorf("node%d: galera-supervisor.service's main process is %q", i+1, comm)
		}
	}
}
