package main

import (
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

func at(sec int) time.Time { return time.Unix(1_800_000_000+int64(sec), 0).UTC() }

func TestLastSST(t *testing.T) {
	tests := []struct {
		name    string
		entries []journalEntry
		want    *SSTRecord
	}{
		{"none", []journalEntry{{Time: at(0), Message: "galera-supervisor: phase: synced"}}, nil},
		{
			"supervisor joiner, done",
			[]journalEntry{
				{Time: at(0), Message: "2026-11-21 11:00:00 0 [Note] WSREP: Running: 'wsrep_sst_native-copy --role 'joiner' --address '127.0.0.1:4444' --datadir '/var/lib/mysql/'"},
				{Time: at(1), Message: "galera-supervisor: SST joiner native-copy: waiting "},
				{Time: at(2), Message: "galera-supervisor: SST joiner native-copy: receiving 127.0.0.1:4567"},
				{Time: at(64), Message: "galera-supervisor: SST joiner native-copy: done 127.0.0.1:4567"},
				{Time: at(65), Message: "WSREP: SST received: 1d1b1b1b-0000-11f1-8000-000000000001:42"},
			},
			&SSTRecord{Role: "joiner", Method: "native-copy", Peer: "127.0.0.1:4567", Start: at(0), End: at(64), Outcome: "succeeded"},
		},
		{
			"supervisor joiner, failed",
			[]journalEntry{
				{Time: at(0), Message: "galera-supervisor: SST joiner native-copy: receiving 10.0.0.2:4444"},
				{Time: at(30), Message: "galera-supervisor: SST joiner failed: read 10.0.0.2:4444: connection reset"},
			},
			&SSTRecord{Role: "joiner", Method: "native-copy", Peer: "10.0.0.2:4444", Start: at(0), End: at(30), Outcome: "failed", Detail: "read 10.0.0.2:4444: connection reset"},
		},
		{
			"supervisor joiner, journal fields",
			[]journalEntry{
				{Time: at(0), Message: "SST phase sst_role=joiner", Fields: map[string]string{"SST_ROLE": "joiner", "SST_METHOD": "native-copy", "SST_PHASE": "waiting"}},
				{Time: at(2), Message: "SST phase", Fields: map[string]string{"SST_ROLE": "joiner", "SST_METHOD": "native-copy", "SST_PHASE": "receiving", "SST_PEER": "127.0.0.1:4567"}},
				{Time: at(64), Message: "SST phase", Fields: map[string]string{"SST_ROLE": "joiner", "SST_METHOD": "native-copy", "SST_PHASE": "done", "SST_PEER": "127.0.0.1:4567"}},
			},
			&SSTRecord{Role: "joiner", Method: "native-copy", Peer: "127.0.0.1:4567", Start: at(0), End: at(64), Outcome: "succeeded"},
		},
		{
			"supervisor joiner failed, as text",
			[]journalEntry{
				{Time: at(0), Message: "galera-supervisor: SST phase sst_role=joiner sst_method=native-copy sst_phase=receiving sst_peer=10.0.0.2:4444"},
				{Time: at(30), Message: `galera-supervisor: ERROR: SST joiner failed sst_role=joiner sst_method=native-copy sst_peer=10.0.0.2:4444 sst_error="read 10.0.0.2:4444: connection \"reset\""`},
			},
			&SSTRecord{Role: "joiner", Method: "native-copy", Peer: "10.0.0.2:4444", Start: at(0), End: at(30), Outcome: "failed", Detail: `read 10.0.0.2:4444: connection "reset"`},
		},
		{
			"stock donor, then a later joiner still running",
			[]journalEntry{
				{Time: at(0), Message: "WSREP: Running: 'wsrep_sst_rsync --role 'donor' --address '127.0.0.1:4444/rsync_sst'"},
				{Time: at(9), Message: "WSREP: SST sent: 1d1b1b1b-0000-11f1-8000-000000000001:7"},
				{Time: at(100), Message: "WSREP: Running: 'wsrep_sst_rsync --role 'joiner' --address '127.0.0.1'"},
			},
			&SSTRecord{Role: "joiner", Method: "rsync", Start: at(100), Outcome: "running"},
		},
		{
			"stock joiner failure",
			[]journalEntry{
				{Time: at(0), Message: "WSREP: Running: 'wsrep_sst_rsync --role 'joiner' --address '127.0.0.1'"},
				{Time: at(5), Message: "WSREP: SST failed: 32 (Broken pipe)"},
			},
			&SSTRecord{Role: "joiner", Method: "rsync", Start: at(0), End: at(5), Outcome: "failed", Detail: "SST failed: 32 (Broken pipe)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lastSST(tt.entries)
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("lastSST = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
}

func TestParseJournalJSON(t *testing.T) {
	in := `{"__REALTIME_TIMESTAMP":"1800000000000000","MESSAGE":"galera-supervisor: SST donor native-copy: sending 127.0.0.1:4444"}
{"__REALTIME_TIMESTAMP":"1800000001000000","MESSAGE":[83,83,84,32,255],"SST_PEER":[255],"SST_ROLE":"donor"}
`
	es, err := parseJournalJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || !es[0].Time.Equal(at(0)) || es[0].Fields != nil || es[1].Message != "SST \xff" ||
		es[1].Fields["SST_PEER"] != "\xff" || es[1].Fields["SST_ROLE"] != "donor" {
		t.Fatalf("parseJournalJSON = %+v", es)
	}
	if _, err := parseJournalJSON(strings.NewReader("{not json\n")); err == nil {
		t.Error("parseJournalJSON accepted a broken line")
	}
}

func FuzzLastSST(f *testing.F) {
	f.Add(`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"galera-supervisor: SST joiner native-copy: receiving x"}`)
	f.Add(`{"__REALTIME_TIMESTAMP":"2","MESSAGE":"WSREP: SST failed: 1"}`)
	f.Add(`{"__REALTIME_TIMESTAMP":"3","MESSAGE":"SST phase sst_role=donor sst_phase=sending sst_peer=\"a b\""}`)
	f.Fuzz(func(t *testing.T, s string) {
		es, err := parseJournalJSON(strings.NewReader(s))
		if err != nil {
			return
		}
		if r := lastSST(es); r != nil {
			_ = r.String()
			switch r.Outcome {
			case "running", "succeeded", "failed":
			default:
				t.Errorf("outcome %q", r.Outcome)
			}
			if r.Role != "joiner" && r.Role != "donor" {
				t.Errorf("role %q", r.Role)
			}
		}
	})
}

func TestUnitDefaults(t *testing.T) {
	st := unit.State{ExecStart: [][]string{{"/usr/bin/galera-supervisor", "run",
		"--defaults-file=/etc/mysql/galera-supervisor/n1.cnf", "--defaults-group-suffix=$SUFFIX",
		"--", "--defaults-extra-file=/ignored"}}}
	got := unitDefaults(st)
	want := supervisor.Defaults{File: "/etc/mysql/galera-supervisor/n1.cnf"}
	if got != want {
		t.Errorf("unitDefaults = %+v, want %+v", got, want)
	}
}

func TestPrintStatus(t *testing.T) {
	st := &Status{
		Unit: &unit.State{Name: "galera-supervisor@n2.service", Description: "MariaDB Galera node n2",
			ActiveState: "active", SubState: "running", StatusText: "synced", MainPID: 42, Since: at(0)},
		Socket:       "/run/mysqld/n2.sock",
		Wsrep:        map[string]string{"wsrep_local_state_comment": "Synced", "wsrep_cluster_status": "Primary", "wsrep_cluster_size": "2", "wsrep_last_committed": "7"},
		GrastatePath: "/var/lib/n2/grastate.dat",
		Grastate:     &supervisor.Grastate{UUID: "1d1b1b1b-0000-11f1-8000-000000000001", Seqno: -1},
		LastSST:      &SSTRecord{Role: "joiner", Method: "native-copy", Start: at(-70), End: at(-5), Outcome: "succeeded"},
		LastDecision: &quorum.Record{Time: at(-80), Decision: quorum.Decision{Action: quorum.ActionJoin,
			Reason: "peer 10.0.0.1:4569 is in a Primary Component (synced)", Peers: "10.0.0.2:4569=waiting 1d1b1b1b:7"}},
	}
	var b strings.Builder
	printStatus(&b, st, at(65))
	for _, want := range []string{
		"last decision: join,", "(2m25s ago)", "peer 10.0.0.1:4569 is in a Primary Component", "peers: 10.0.0.2:4569=waiting",
		"active (running) since", "; 1m5s ago", "status:    synced", "main pid:  42",
		"Synced, Primary, cluster size 2, last committed 7",
		"seqno -1, safe_to_bootstrap 0", "joiner by native-copy", "succeeded after 1m5s",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}
