package supervisor

import (
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

func TestStatusLine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// A meter that saw 2.0 of 4.5 GiB arrive at 310 MB/s.
	sstMeter := func() *progress.Meter {
		m := &progress.Meter{}
		m.Observe(progress.Event{Role: "joiner", Phase: progress.PhaseReceiving, Done: 2<<30 - 310e6, Total: 45 << 30 / 10}, t0.Add(-time.Second))
		m.Observe(progress.Event{Role: "joiner", Phase: progress.PhaseReceiving, Done: 2 << 30, Total: 45 << 30 / 10}, t0)
		return m
	}
	// A stock method's, as the supervisor measures it.
	measured := func(e progress.Event) *progress.Meter {
		m := &progress.Meter{}
		e.Done = 2<<30 - 310e6
		m.Observe(e, t0.Add(-time.Second))
		e.Done = 2 << 30
		m.Observe(e, t0)
		return m
	}
	// A delta SST: 3.1 GiB of a 412 GiB datadir differ; what moves is no
	// share of the datadir, so no percent and no ETA.
	deltaMeter := func(phase string) *progress.Meter {
		m := &progress.Meter{}
		e := progress.Event{Role: "joiner", Method: "native-copy", Phase: phase, Done: 31 << 30 / 10, Total: 412 << 30, Delta: true}
		m.Observe(e, t0.Add(-time.Second))
		if phase == progress.PhaseReceiving {
			e.Done += 310e6
			m.Observe(e, t0)
		}
		return m
	}
	synced := NodeState{Comment: "Synced", Ready: true, ClusterStatus: "Primary"}
	tests := []struct {
		name string
		v    view
		want string
	}{
		{"recovering", view{wsrep: true, recovering: true}, "recovering"},
		{"starting", view{wsrep: true}, "starting"},
		{"starting with mariadbd's words", view{wsrep: true, childStatus: "InnoDB: Starting crash recovery"}, "starting: InnoDB: Starting crash recovery"},
		{"SST with progress", view{wsrep: true, meter: sstMeter(), lastProg: t0, progRole: "joiner"}, "receiving SST 44% 2.0/4.5 GiB 310 MB/s ETA 9s"},
		{"delta SST", view{wsrep: true, meter: deltaMeter(progress.PhaseReceiving), lastProg: t0, progRole: "joiner"}, "receiving SST delta: 3.4 GiB of 412.0 GiB differ so far 310 MB/s"},
		{"delta SST verified", view{wsrep: true, meter: deltaMeter(progress.PhaseMoving), lastProg: t0, progRole: "joiner"}, "moving delta: 3.1 GiB of 412.0 GiB differ"},
		{"SST progress gone stale", view{wsrep: true, meter: sstMeter(), lastProg: t0.Add(-time.Minute), sstRunning: true, sstRole: "joiner", sstMethod: "rsync"}, "receiving SST by rsync"},
		{"SST seen by the monitor only", view{wsrep: true, sstMonitor: true}, "receiving SST"},
		{"SST by a stock method", view{wsrep: true, meter: measured(progress.Event{Role: "joiner", Method: "rsync", Phase: progress.PhaseReceiving}),
			lastProg: t0, progRole: "joiner", measured: true}, "receiving SST by rsync 2.0 GiB 310 MB/s"},
		// A joiner loaded by mysqldump answers queries and is non-Primary
		// until the dump is in.
		{"SST by mysqldump", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Joining: receiving State Transfer", ClusterStatus: "non-Primary"},
			meter:    measured(progress.Event{Role: "joiner", Method: "mysqldump", Phase: progress.PhaseReceiving}),
			lastProg: t0, progRole: "joiner", measured: true}, "receiving SST by mysqldump 2.0 GiB 310 MB/s"},
		{"donor by a stock method", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Donor/Desynced", ClusterStatus: "Primary"},
			meter:    measured(progress.Event{Role: "donor", Method: "rsync", Phase: progress.PhaseSending, Total: 45 << 30 / 10, Peer: "joiner 10.0.0.2:4444/rsync_sst"}),
			lastProg: t0, progRole: "donor", measured: true}, "donor: sending SST by rsync to 10.0.0.2:4444/rsync_sst 44% 2.0/4.5 GiB 310 MB/s ETA 9s"},
		{"waiting for primary", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Initialized", ClusterStatus: "non-Primary"}}, "waiting for primary"},
		{"IST", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Joining: receiving State Transfer", ClusterStatus: "Primary"}}, "IST"},
		{"joined", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Joined", ClusterStatus: "Primary"}}, "joined, catching up"},
		{"synced", view{wsrep: true, sqlUp: true, node: synced}, "synced"},
		{"donor", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Donor/Desynced", ClusterStatus: "Primary"}, sstRunning: true, sstRole: "donor", sstMethod: "native-copy"}, "donor: sending SST by native-copy"},
		{"desynced", view{wsrep: true, sqlUp: true, node: NodeState{Comment: "Donor/Desynced", ClusterStatus: "Primary", Desync: true}}, "desynced"},
		{"stopping", view{wsrep: true, stopping: true, sqlUp: true, node: synced}, "stopping"},
		{"access denied", view{wsrep: true, healthErr: "health check: access denied"}, "starting; health check: access denied"},
		{"no wsrep", view{sqlUp: true}, "synced"},
	}
	for _, tt := range tests {
		if got := tt.v.line(t0); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
