package systemdtest

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// journalEntries reads journalctl -o json with the given match arguments.
func (r *rig) journalEntries(ctx context.Context, args ...string) []map[string]any {
	r.t.Helper()
	return journalEntries(ctx, r.t, r.m, args...)
}

// journalEntries reads m's journalctl -o json with the given arguments.
func journalEntries(ctx context.Context, t testing.TB, m *Machine, args ...string) []map[string]any {
	t.Helper()
	out, err := m.Exec(ctx, append([]string{"journalctl", "--no-pager", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var es []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) == nil {
			es = append(es, e)
		}
	}
	return es
}

func field(e map[string]any, k string) string { s, _ := e[k].(string); return s }

// TestSystemdJournalFields joins a node by native-copy under the real
// systemd and journald, with the catalog installed: the supervisor's and
// both SST processes' entries carry their fields (journalctl -o json), SST
// started and finished their MESSAGE_IDs, and journalctl -x shows the
// catalog's text. A failing SST process under a unit of its own gives
// SST_RESULT=failed with the failure's catalog entry.
func TestSystemdJournalFields(t *testing.T) {
	r := newRig(t, "gs-logs")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	r.installCatalog(ctx)

	n1, n2 := newNode(1), newNode(2)
	r.setup(ctx, []node{n1, n2}, nil, "[Service]\nRestart=no\n"+nodeExec)
	r.bootstrap(ctx, n1)
	if out, err := r.m.Systemctl(ctx, "start", n2.unit); err != nil {
		t.Fatalf("start %s: %v\n%s\n%s", n2.unit, err, out, r.m.Journal(ctx, n2.unit))
	}
	r.exec(ctx, "journalctl", "--sync")

	r.run(t, "sst-fields", func(t *testing.T) {
		for _, side := range []struct {
			n    node
			role string
		}{{n2, "joiner"}, {n1, "donor"}} {
			started := r.journalEntries(ctx, "-u", side.n.unit, "MESSAGE_ID="+logging.MessageSSTStarted)
			finished := r.journalEntries(ctx, "-u", side.n.unit, "SST_RESULT=finished")
			if len(started) != 1 || len(finished) != 1 {
				t.Fatalf("%s: %d SST started and %d SST finished entries, want 1 each\n%s", side.n.unit, len(started), len(finished), r.m.Journal(ctx, side.n.unit))
			}
			e := finished[0]
			t.Logf("%s finished: %v", side.role, e)
			want := map[string]string{"SST_ROLE": side.role, "SST_METHOD": "native-copy", "MESSAGE_ID": logging.MessageSSTFinished,
				"SYSLOG_IDENTIFIER": "wsrep_sst_native-copy", "PRIORITY": "6", "_SYSTEMD_UNIT": side.n.unit}
			for k, v := range want {
				if got := field(e, k); got != v {
					t.Errorf("%s finished: %s=%q, want %q", side.role, k, got, v)
				}
			}
			if n, err := strconv.ParseInt(field(e, "SST_BYTES"), 10, 64); err != nil || n < 1<<20 {
				t.Errorf("%s finished: SST_BYTES=%q, want the bytes sent", side.role, field(e, "SST_BYTES"))
			}
			if s, err := strconv.ParseFloat(field(e, "SST_SECONDS"), 64); err != nil || s < 0 {
				t.Errorf("%s finished: SST_SECONDS=%q", side.role, field(e, "SST_SECONDS"))
			}
			if !strings.HasPrefix(field(e, "SST_PEER"), "127.0.0.1:") {
				t.Errorf("%s finished: SST_PEER=%q, want the peer's address", side.role, field(e, "SST_PEER"))
			}
			if strings.Contains(field(e, "MESSAGE"), "WSREP_SST") {
				t.Errorf("%s finished: MESSAGE %q carries the stderr prefix", side.role, field(e, "MESSAGE"))
			}
		}
	})

	r.run(t, "node-state", func(t *testing.T) {
		es := r.journalEntries(ctx, "-u", n2.unit, "SYSLOG_IDENTIFIER=galera-supervisor", "NODE_STATE=synced")
		if len(es) == 0 {
			t.Fatalf("no galera-supervisor entry with NODE_STATE=synced\n%s", r.m.Journal(ctx, n2.unit))
		}
		if !strings.Contains(field(es[len(es)-1], "MESSAGE"), "READY=1") {
			t.Errorf("last NODE_STATE=synced entry: %q", field(es[len(es)-1], "MESSAGE"))
		}
		sst := r.journalEntries(ctx, "-u", n2.unit, "SYSLOG_IDENTIFIER=galera-supervisor", "SST_ROLE=joiner", "SST_PHASE=done")
		if len(sst) == 0 || field(sst[0], "SST_METHOD") != "native-copy" {
			t.Errorf("supervisor's SST done entries: %v", sst)
		}
	})

	r.run(t, "catalog", func(t *testing.T) {
		out := r.exec(ctx, "journalctl", "--no-pager", "-x", "-u", n2.unit, "MESSAGE_ID="+logging.MessageSSTFinished)
		t.Logf("journalctl -x:\n%s", out)
		if !strings.Contains(out, "Subject: SST finished: joiner by native-copy") || !strings.Contains(out, "bytes in") {
			t.Errorf("journalctl -x shows no catalog text:\n%s", out)
		}
		out = r.exec(ctx, "journalctl", "--no-pager", "-x", "-u", n1.unit, "MESSAGE_ID="+logging.MessageSSTStarted)
		if !strings.Contains(out, "Subject: SST started: donor by native-copy") {
			t.Errorf("journalctl -x shows no catalog text:\n%s", out)
		}
	})

	r.run(t, "failed", func(t *testing.T) {
		// A joiner whose datadir is missing fails at once, under a unit of
		// its own so that stderr is the journal, as under mariadbd.
		cmd := r.m.Command(ctx, "systemd-run", "--wait", "--quiet", "--unit=gs-sst-fail", "--property=User=mysql",
			"/usr/bin/wsrep_sst_native-copy", "--role", "joiner", "--address", "127.0.0.1", "--datadir", "/var/lib/gs/missing")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("the SST with no datadir succeeded: %s", out)
		}
		r.exec(ctx, "journalctl", "--sync")
		es := r.journalEntries(ctx, "-u", "gs-sst-fail", "SST_RESULT=failed")
		if len(es) != 1 {
			t.Fatalf("%d SST_RESULT=failed entries, want 1\n%s", len(es), r.m.Journal(ctx, "gs-sst-fail"))
		}
		e := es[0]
		if field(e, "MESSAGE_ID") != logging.MessageSSTFailed || field(e, "PRIORITY") != "3" || field(e, "SST_EXIT") != "2" ||
			!strings.Contains(field(e, "SST_ERROR"), "/var/lib/gs/missing") {
			t.Errorf("failed entry: %v", e)
		}
		x := r.exec(ctx, "journalctl", "--no-pager", "-x", "-u", "gs-sst-fail", "SST_RESULT=failed")
		if !strings.Contains(x, "Subject: SST failed: joiner by native-copy") || !strings.Contains(x, "/var/lib/gs/missing") {
			t.Errorf("journalctl -x shows no catalog text:\n%s", x)
		}
	})
}
