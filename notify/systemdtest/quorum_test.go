package systemdtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// TestSystemdQuorum runs two coordinated nodes under the real systemd and
// journald: after a clean full shutdown both units start at once, and the
// last one down bootstraps by the supervisors' decision, without a person.
// The decisions are journal entries with their fields (DECISION, REASON,
// PEERS, CHOSEN, RULE, GALERA_UUID, GALERA_SEQNO) and MESSAGE_IDs, journalctl -x shows
// the catalog's text, and galera-supervisor status shows the last one.
func TestSystemdQuorum(t *testing.T) {
	r := newRig(t, "gs-quorum")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r.installCatalog(ctx)

	n1, n2 := newNode(1), newNode(2)
	r.setup(ctx, []node{n1, n2}, nil, "[Service]\nRestart=no\n"+nodeExec)
	const secret = "/etc/mysql/galera-supervisor/peer-secret"
	r.write(secret, "a secret shared by the two supervisors\n")
	r.exec(ctx, "chown", "mysql:mysql", secret)
	r.exec(ctx, "chmod", "0600", secret)
	peers := "127.0.0.1:4571,127.0.0.1:4572"
	for i, n := range []node{n1, n2} {
		cnf := n.config(fmt.Sprintf("gcomm://127.0.0.1:%d,127.0.0.1:%d", n1.gport, n2.gport), nil)
		cnf += fmt.Sprintf("\n[galera-supervisor]\npeer-address = 127.0.0.1:%d\npeers = %s\npeer-secret-file = %s\nbootstrap-wait = 5\n", 4571+i, peers, secret)
		r.write(n.cnf, cnf)
	}

	r.bootstrap(ctx, n1)
	if out, err := r.m.Systemctl(ctx, "start", n2.unit); err != nil {
		t.Fatalf("start %s: %v\n%s\n%s", n2.unit, err, out, r.m.Journal(ctx, n2.unit))
	}
	// A clean full shutdown, n2 then n1: stock aborts on the next start
	// until a person runs galera_new_cluster on n1.
	for _, n := range []node{n2, n1} {
		if out, err := r.m.Systemctl(ctx, "stop", n.unit); err != nil {
			t.Fatalf("stop %s: %v\n%s", n.unit, err, out)
		}
	}
	since := time.Now().Add(-time.Second).Format("2006-01-02 15:04:05")
	if out, err := r.m.Systemctl(ctx, "start", n1.unit, n2.unit); err != nil {
		t.Fatalf("start both: %v\n%s\n%s\n%s", err, out, r.m.Journal(ctx, n1.unit), r.m.Journal(ctx, n2.unit))
	}
	r.exec(ctx, "journalctl", "--sync")

	r.run(t, "fields", func(t *testing.T) {
		boot := r.journalEntries(ctx, "-u", n1.unit, "--since", since, "MESSAGE_ID="+quorum.MessageBootstrap)
		if len(boot) != 1 {
			t.Fatalf("n1: %d bootstrap decisions, want 1\n%s", len(boot), r.m.Journal(ctx, n1.unit))
		}
		e := boot[0]
		t.Logf("n1: %v", e)
		if field(e, "DECISION") != "bootstrap" || field(e, "PRIORITY") != "4" || field(e, "CHOSEN") != "127.0.0.1:4571" || !quorum.ValidUUID(field(e, "GALERA_UUID")) {
			t.Errorf("n1's bootstrap entry: %v", e)
		}
		// Both units start at once, so n1's first poll may or may not find
		// n2's supervisor answering: n1 bootstraps either as the node that
		// left last, cleanly (safe_to_bootstrap: 1, n2 not yet up), or as
		// the most advanced with every configured node present. Either
		// way the reason and what each node said must name it.
		switch rule, reason, peers := field(e, "RULE"), field(e, "REASON"), field(e, "PEERS"); rule {
		case quorum.RuleSafe:
			if !strings.Contains(reason, "127.0.0.1:4571 left the last Primary Component last, cleanly (safe_to_bootstrap: 1") ||
				!strings.Contains(peers, "127.0.0.1:4571=waiting") || !strings.Contains(peers, " safe") || !strings.Contains(peers, "127.0.0.1:4572=") {
				t.Errorf("n1's bootstrap by rule %s: REASON=%q PEERS=%q", rule, reason, peers)
			}
		case quorum.RuleAllPresent:
			if !strings.Contains(reason, "127.0.0.1:4571 is the most advanced eligible node") || !strings.Contains(reason, "every configured node present (2 of 2)") ||
				!strings.Contains(peers, "127.0.0.1:4571=waiting") || !strings.Contains(peers, "127.0.0.1:4572=waiting") {
				t.Errorf("n1's bootstrap by rule %s: REASON=%q PEERS=%q", rule, reason, peers)
			}
		default:
			t.Errorf("n1 bootstrapped by rule %q, want %s or %s after a clean full shutdown: %v", rule, quorum.RuleSafe, quorum.RuleAllPresent, e)
		}
		if n, err := strconv.ParseInt(field(e, "GALERA_SEQNO"), 10, 64); err != nil || n < 1 {
			t.Errorf("n1: GALERA_SEQNO=%q", field(e, "GALERA_SEQNO"))
		}
		join := r.journalEntries(ctx, "-u", n2.unit, "--since", since, "DECISION=join")
		if len(join) != 1 || !strings.Contains(field(join[0], "REASON"), "127.0.0.1:4571 is in a Primary Component") {
			t.Errorf("n2's join entries: %v\n%s", join, r.m.Journal(ctx, n2.unit))
		}
		for _, e := range r.journalEntries(ctx, "-u", n2.unit, "--since", since, "DECISION=wait") {
			if field(e, "MESSAGE_ID") != quorum.MessageWait || field(e, "REASON") == "" {
				t.Errorf("n2's wait entry: %v", e)
			}
		}
	})

	r.run(t, "catalog", func(t *testing.T) {
		out := r.exec(ctx, "journalctl", "--no-pager", "-x", "-u", n1.unit, "--since", since, "MESSAGE_ID="+quorum.MessageBootstrap)
		// The catalog's text, with the entry's REASON and PEERS filled in.
		if !strings.Contains(out, "Subject: Bootstrapping a new Primary Component from this node") || !strings.Contains(out, "supervisors chose this node to bootstrap the cluster: 127.0.0.1:4571 ") ||
			!strings.Contains(out, "What each node said: 127.0.0.1:4571=waiting") {
			t.Errorf("journalctl -x shows no catalog text:\n%s", out)
		}
	})

	r.run(t, "status", func(t *testing.T) {
		for _, c := range []struct {
			n    node
			want string
		}{{n1, "last decision: bootstrap"}, {n2, "last decision: join"}} {
			out, code := r.supervisor(ctx, "status", "--unit", c.n.unit)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Errorf("status %s: exit %d, want %q:\n%s", c.n.unit, code, c.want, out)
			}
		}
	})

	// galera-supervisor maintenance through D-Bus: the datadir's file, then
	// SIGUSR2 to the unit's main process (KillUnit), read back in its
	// STATUS=; status says so, and a restart of the unit keeps it.
	r.run(t, "maintenance", func(t *testing.T) {
		out, code := r.supervisor(ctx, "maintenance", "on", "--unit", n2.unit, "--reason", "TestSystemdQuorum")
		if code != 0 || !strings.Contains(out, n2.unit+" applied it: synced; maintenance: drained") {
			t.Fatalf("maintenance on --unit %s: exit %d:\n%s\n%s", n2.unit, code, out, r.m.Journal(ctx, n2.unit))
		}
		if out, _ := r.supervisor(ctx, "status", "--unit", n2.unit); !strings.Contains(out, "maintenance: on since") || !strings.Contains(out, "TestSystemdQuorum") {
			t.Errorf("status in maintenance:\n%s", out)
		}
		if out, err := r.m.Systemctl(ctx, "restart", n2.unit); err != nil {
			t.Fatalf("restart %s: %v\n%s", n2.unit, err, out)
		}
		if out := r.exec(ctx, "systemctl", "show", "-p", "StatusText", n2.unit); !strings.Contains(out, "maintenance: drained") {
			t.Errorf("%s restarted in maintenance: %s", n2.unit, out)
		}
		out, code = r.supervisor(ctx, "maintenance", "off", "--unit", n2.unit)
		if code != 0 || !strings.Contains(out, "maintenance: off") || strings.Contains(out, "drained") {
			t.Errorf("maintenance off --unit %s: exit %d:\n%s", n2.unit, code, out)
		}
	})
}
