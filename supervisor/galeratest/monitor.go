package galeratest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// View is one node's wsrep status at one moment.
type View struct {
	Node    int
	At      time.Time
	Up      bool   // the node answered
	Status  string // wsrep_cluster_status: Primary, non-Primary, Disconnected
	State   string // wsrep_local_state_comment
	ConfID  string // wsrep_cluster_conf_id
	UUID    string // wsrep_cluster_state_uuid
	Size    string // wsrep_cluster_size
	Members []string
}

// Primary reports whether the node is in a Primary Component.
func (v View) Primary() bool { return v.Up && v.Status == "Primary" }

func (v View) String() string {
	if !v.Up {
		return fmt.Sprintf("node%d down", v.Node)
	}
	return fmt.Sprintf("node%d %s %s conf %s size %s uuid %s members %s", v.Node, v.Status, v.State, v.ConfID, v.Size, v.UUID, strings.Join(v.Members, ","))
}

// Monitor polls every node's view every interval, for the whole test, and
// records a violation whenever one sweep sees two Primary Components: two
// nodes Primary with different cluster state UUIDs or with disjoint
// members. Nodes that are down simply answer nothing.
type Monitor struct {
	nodes    []*Node
	dbs      []*sql.DB
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}

	mu         sync.Mutex
	cond       *sync.Cond
	last       []View
	sweeps     int
	violations []string
	primary    map[int]int // sweeps in which node was Primary
}

// StartMonitor starts polling nodes every interval.
func StartMonitor(nodes []*Node, interval time.Duration) (*Monitor, error) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{nodes: nodes, interval: interval, cancel: cancel, done: make(chan struct{}), primary: map[int]int{}}
	m.cond = sync.NewCond(&m.mu)
	for _, n := range nodes {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = User, Password, "unix", n.Socket
		cfg.Logger = quiet{} // connections broken by a kill are the point
		cfg.Timeout, cfg.ReadTimeout = time.Second, 2*time.Second
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			cancel()
			return nil, fmt.Errorf("node%d: open %s: %w", n.N, n.Socket, err)
		}
		db.SetMaxOpenConns(1)
		m.dbs = append(m.dbs, db)
	}
	go m.run(ctx)
	return m, nil
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		views := make([]View, len(m.nodes))
		var wg sync.WaitGroup
		for i, n := range m.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				views[i] = readView(ctx, n.N, m.dbs[i])
			}()
		}
		wg.Wait()
		m.record(views)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func readView(ctx context.Context, node int, db *sql.DB) View {
	v := View{Node: node, At: time.Now()}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('wsrep_cluster_status','wsrep_local_state_comment','wsrep_cluster_conf_id','wsrep_cluster_state_uuid','wsrep_cluster_size','wsrep_incoming_addresses')")
	if err != nil {
		return v
	}
	defer rows.Close()
	for rows.Next() {
		var k, val string
		if rows.Scan(&k, &val) != nil {
			return View{Node: node, At: v.At}
		}
		switch strings.ToLower(k) {
		case "wsrep_cluster_status":
			v.Status = val
		case "wsrep_local_state_comment":
			v.State = val
		case "wsrep_cluster_conf_id":
			v.ConfID = val
		case "wsrep_cluster_state_uuid":
			v.UUID = val
		case "wsrep_cluster_size":
			v.Size = val
		case "wsrep_incoming_addresses":
			for _, a := range strings.Split(val, ",") {
				if a = strings.TrimSpace(a); a != "" {
					v.Members = append(v.Members, a)
				}
			}
			slices.Sort(v.Members)
		}
	}
	v.Up = rows.Err() == nil && v.Status != ""
	return v
}

func (m *Monitor) record(views []View) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweeps++
	m.last = views
	for _, v := range views {
		if v.Primary() {
			m.primary[v.Node]++
		}
	}
	if msg := twoPrimaries(views); msg != "" {
		m.violations = append(m.violations, msg)
	}
	m.cond.Broadcast()
}

// twoPrimaries describes the first pair of Primary nodes of one sweep
// that cannot be one Primary Component, or returns "".
func twoPrimaries(views []View) string {
	for i, a := range views {
		for _, b := range views[i+1:] {
			if !a.Primary() || !b.Primary() {
				continue
			}
			if a.UUID != b.UUID || !overlap(a.Members, b.Members) {
				return fmt.Sprintf("two Primary Components at %s: %v | %v", a.At.Format("15:04:05.000"), a, b)
			}
		}
	}
	return ""
}

func overlap(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// Err returns every violation seen so far, or nil.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.violations) == 0 {
		return nil
	}
	return fmt.Errorf("%d sweeps of %d saw two Primary Components; first: %s", len(m.violations), m.sweeps, m.violations[0])
}

// Last is the latest sweep's views.
func (m *Monitor) Last() []View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.last)
}

// PrimarySweeps is how many sweeps so far saw node Primary.
func (m *Monitor) PrimarySweeps(node int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.primary[node]
}

// Wait waits for the first sweep whose views satisfy ok, starting with the
// next one, and returns its time. It gives up when ctx ends or one of
// exited (the nodes' Exited channels) closes.
func (m *Monitor) Wait(ctx context.Context, ok func([]View) bool, exited ...<-chan struct{}) (time.Time, error) {
	stop := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.sweeps
	for {
		if m.sweeps > seen && ok(m.last) {
			return m.last[0].At, nil
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, fmt.Errorf("%w; last views: %v", err, m.last)
		}
		for _, e := range exited {
			select {
			case <-e:
				return time.Time{}, fmt.Errorf("a node's main process exited; last views: %v", m.last)
			default:
			}
		}
		m.cond.Wait()
	}
}

// Synced is a Wait condition: each of nodes is Primary and Synced, in one
// view (the same conf id) of len(nodes) members.
func Synced(nodes ...*Node) func([]View) bool {
	size := fmt.Sprint(len(nodes))
	return func(vs []View) bool {
		conf := ""
		for _, n := range nodes {
			i := slices.IndexFunc(vs, func(v View) bool { return v.Node == n.N })
			if i < 0 {
				return false
			}
			v := vs[i]
			if !v.Primary() || v.State != "Synced" || v.Size != size || conf != "" && v.ConfID != conf {
				return false
			}
			conf = v.ConfID
		}
		return true
	}
}

// Stop stops polling.
func (m *Monitor) Stop() {
	m.cancel()
	<-m.done
	for _, db := range m.dbs {
		db.Close()
	}
}

// quiet drops the driver's log lines.
type quiet struct{}

func (quiet) Print(...any) {}
