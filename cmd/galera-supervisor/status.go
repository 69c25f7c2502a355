package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

const statusLong = `
Shows, from the system bus, the journal and the node itself:

  unit      ActiveState (SubState) since when, the supervisor's STATUS= line,
            main PID, restarts, last result.
  node      over the node's unix socket (go-sql-driver/mysql):
            wsrep_local_state_comment, wsrep_cluster_status,
            wsrep_cluster_size, wsrep_last_committed, wsrep_cluster_state_uuid.
  grastate  <datadir>/grastate.dat: uuid, seqno, safe_to_bootstrap.
  last decision
            how the supervisor last decided, with its peers, to start the
            node (join, pc-recovery, bootstrap, wait) and why, from
            <datadir>/galera-supervisor.decision.
  maintenance
            whether the node is in maintenance ("galera-supervisor
            maintenance"), since when, by whom and why, from
            <datadir>/galera-supervisor.maintenance.
  last SST  from the unit's journal: the supervisor's "SST <role> <method>:
            <phase>" lines and mariadbd's own "WSREP: SST received/sent/
            failed" lines; role, method, peer, when, how long, outcome.

The node's datadir and socket come from the option files, read with the
same --defaults-* arguments as the unit's ExecStart (galera-supervisor run
--defaults-file=...), unless given here. Credentials: [galera-supervisor],
else [client]; without them the OS user, through unix_socket authentication.

Without --unit: the unit whose main process is the mariadbd of the datadir
of the standard option files, or the supervisor above it; else the one of
galera-supervisor.service and mariadb.service that runs galera-supervisor
and is enabled (the route this host took); else the first that runs
galera-supervisor, else the first that has a unit file.

With --cluster, every supervisor of the cluster instead, asked over the peer
channel ([galera-supervisor] peers, peer-address and peer-secret-file or
peer-tls, read from the option files as above, so this needs the right to
read the secret or the [sst] key): for each, its phase (recovering,
waiting, starting, joined, synced), whether it is in the Primary Component,
the position it recovered or last committed (cluster UUID and seqno), its
maintenance mode, its last decision and how long ago, and its STATUS= line
(SST progress included); one line per node, or JSON with --json. A node
that does not answer is shown with why. Exit 0 when every supervisor
answered, 4 when one did not, 1 when the peer options are missing or bad.

Exit codes:
  0  the unit is active and the node is Synced
  1  the service manager could not be asked (no system bus, ...)
  2  bad command line
  3  the unit is not active (inactive, failed, activating, ...)
  4  the unit is active but the node is not Synced or does not answer
     (with --cluster: a supervisor did not answer)
`

func cmdStatus() *command {
	return &command{
		name:  "status",
		usage: "[--unit U] [--json] [--cluster] [--defaults-file=F ...] [--datadir D] [--socket S]",
		short: "show the unit's state, the node's wsrep state and the last SST",
		long:  statusLong + "\nOptions:\n" + flagUsage(statusFlags(new(statusOptions))),
		run:   runStatus,
	}
}

type statusOptions struct {
	nodeOptions
	json    bool
	socket  string
	timeout time.Duration
	cluster bool
}

func statusFlags(o *statusOptions) *flag.FlagSet {
	fs := newFlagSet("status")
	o.nodeOptions.addFlags(fs)
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.StringVar(&o.socket, "socket", "", "the node's unix socket (default from the option files)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound on each query")
	fs.BoolVar(&o.cluster, "cluster", false, "every supervisor of the cluster, over the peer channel")
	return fs
}

// Status is what "galera-supervisor status --json" prints.
type Status struct {
	Unit      *unit.State          `json:"unit,omitempty"`
	UnitError string               `json:"unit_error,omitempty"`
	Socket    string               `json:"socket,omitempty"`
	Wsrep     map[string]string    `json:"wsrep,omitempty"`
	NodeError string               `json:"node_error,omitempty"`
	Grastate  *supervisor.Grastate `json:"grastate,omitempty"`
	// GrastatePath is <datadir>/grastate.dat.
	GrastatePath  string     `json:"grastate_path,omitempty"`
	GrastateError string     `json:"grastate_error,omitempty"`
	LastSST       *SSTRecord `json:"last_sst,omitempty"`
	// LastDecision is how the supervisor last decided to start the node
	// with its peers (<datadir>/galera-supervisor.decision).
	LastDecision  *quorum.Record `json:"last_decision,omitempty"`
	DecisionError string         `json:"decision_error,omitempty"`
	// Maintenance is the maintenance mode, nil when off.
	Maintenance      *maintenance.State `json:"maintenance,omitempty"`
	MaintenanceError string             `json:"maintenance_error,omitempty"`
}

// statusError carries status's exit code, after the report is printed.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) ExitCode() int { return e.code }

func runStatus(ctx context.Context, c *cli, args []string) error {
	var o statusOptions
	if _, err := parseFlags(statusFlags(&o), args); err != nil {
		return err
	}
	if o.cluster {
		return runStatusCluster(ctx, c, &o)
	}
	var st Status
	conn, err := unit.Dial(ctx, o.bus)
	if err != nil {
		st.UnitError = err.Error()
	} else {
		defer conn.Close()
		name, err := pickUnit(ctx, conn, o.unit)
		o.unit = name
		if err != nil {
			st.UnitError = err.Error()
		} else {
			us, err := conn.State(ctx, name)
			if err != nil {
				st.UnitError = err.Error()
			} else {
				st.Unit = &us
				if o.defaults == (supervisor.Defaults{}) {
					o.defaults = unitDefaults(us)
				}
			}
		}
	}
	datadir, socket, cred := o.datadir, o.socket, credentials{}
	if opts, err := supervisor.LoadOptionFiles(o.defaults, nil)(ctx); err == nil {
		if datadir == "" {
			datadir, _ = opts.Get("datadir")
		}
		if socket == "" {
			socket, _ = opts.Get("socket")
		}
		cred.user, _ = opts.Client["user"]
		cred.password, _ = opts.Client["password"]
	} else if datadir == "" || socket == "" {
		st.NodeError = err.Error()
	}
	if datadir == "" {
		datadir = "/var/lib/mysql"
	}
	if socket == "" {
		socket = "/run/mysqld/mysqld.sock"
	}
	st.Socket = socket
	qctx, cancel := context.WithTimeout(ctx, o.timeout)
	st.Wsrep, err = queryWsrep(qctx, socket, cred)
	cancel()
	if err != nil {
		st.NodeError = err.Error()
	}
	st.GrastatePath = filepath.Join(datadir, "grastate.dat")
	if g, err := supervisor.ReadGrastate(st.GrastatePath); err != nil {
		st.GrastateError = err.Error()
	} else {
		st.Grastate = g
	}
	if r, err := quorum.ReadRecord(datadir); err != nil {
		st.DecisionError = err.Error()
	} else {
		st.LastDecision = r
	}
	if m, err := maintenance.Read(datadir); err != nil {
		st.MaintenanceError = err.Error()
	} else {
		st.Maintenance = m
	}
	if o.unit != "" {
		jctx, cancel := context.WithTimeout(ctx, o.timeout)
		st.LastSST, _ = lastSSTFromJournal(jctx, o.unit)
		cancel()
	}

	if o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("status: write JSON: %w", err)
		}
	} else {
		printStatus(c.stdout, &st, time.Now())
	}
	switch {
	case st.Unit == nil:
		return &statusError{1, "status: " + st.UnitError}
	case st.Unit.ActiveState != "active":
		return &statusError{3, fmt.Sprintf("status: %s is %s", st.Unit.Name, st.Unit.ActiveState)}
	case st.Wsrep == nil:
		return &statusError{4, fmt.Sprintf("status: %s is active but the node does not answer", st.Unit.Name)}
	case st.Wsrep["wsrep_local_state_comment"] != "Synced":
		return &statusError{4, fmt.Sprintf("status: %s is active but the node is %s", st.Unit.Name, orDash(st.Wsrep["wsrep_local_state_comment"]))}
	}
	return nil
}

// pickUnit returns name, or the unit of the node (nodeUnit).
func pickUnit(ctx context.Context, conn *unit.Conn, name string) (string, error) {
	if name != "" {
		if !strings.Contains(name, ".") {
			name += ".service"
		}
		return name, nil
	}
	return nodeUnit(ctx, conn)
}

// unitDefaults takes the --defaults-* arguments of the unit's "run" command,
// so that status and bootstrap read the option files the node reads.
func unitDefaults(st unit.State) supervisor.Defaults {
	var d supervisor.Defaults
	for _, argv := range st.ExecStart {
		for _, a := range argv {
			if a == "--" {
				break
			}
			k, v, _ := strings.Cut(a, "=")
			if strings.HasPrefix(v, "$") {
				continue // an unexpanded variable
			}
			switch k {
			case "--defaults-file":
				d.File = v
			case "--defaults-extra-file":
				d.ExtraFile = v
			case "--defaults-group-suffix":
				d.GroupSuffix = v
			case "--no-defaults":
				d.NoDefaults = true
			}
		}
	}
	return d
}

type credentials struct{ user, password string }

// queryWsrep reads the node's wsrep status over its unix socket.
func queryWsrep(ctx context.Context, socket string, cred credentials) (map[string]string, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "unix", socket
	cfg.User, cfg.Passwd = cred.user, cred.password
	if cfg.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("current user: %w", err)
		}
		cfg.User = u.Username
	}
	cfg.Timeout = 3 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", socket, err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", socket, err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("node %s: %w", socket, err)
		}
		m[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node %s: %w", socket, err)
	}
	return m, nil
}

func printStatus(w io.Writer, st *Status, now time.Time) {
	if u := st.Unit; u != nil {
		fmt.Fprintf(w, "%s - %s\n", u.Name, u.Description)
		line := fmt.Sprintf("%s (%s)", u.ActiveState, u.SubState)
		if !u.Since.IsZero() {
			line += fmt.Sprintf(" since %s; %s ago", u.Since.Format("Mon 2006-01-02 15:04:05 MST"), now.Sub(u.Since).Round(time.Second))
		}
		fmt.Fprintf(w, "  unit:      %s\n", line)
		if u.StatusText != "" {
			fmt.Fprintf(w, "  status:    %s\n", u.StatusText)
		}
		if u.MainPID != 0 {
			fmt.Fprintf(w, "  main pid:  %d\n", u.MainPID)
		}
		if u.Result != "" && u.Result != "success" || u.NRestarts > 0 {
			fmt.Fprintf(w, "  result:    %s, exit status %d, %d restarts\n", u.Result, u.ExecMainStatus, u.NRestarts)
		}
	} else {
		fmt.Fprintf(w, "unit: unknown: %s\n", st.UnitError)
	}
	fmt.Fprintf(w, "node (%s):\n", st.Socket)
	if st.Wsrep != nil {
		ws := st.Wsrep
		fmt.Fprintf(w, "  wsrep:     %s, %s, cluster size %s, last committed %s\n",
			orDash(ws["wsrep_local_state_comment"]), orDash(ws["wsrep_cluster_status"]),
			orDash(ws["wsrep_cluster_size"]), orDash(ws["wsrep_last_committed"]))
		if ws["wsrep_cluster_state_uuid"] != "" {
			fmt.Fprintf(w, "  cluster:   %s\n", ws["wsrep_cluster_state_uuid"])
		}
	} else {
		fmt.Fprintf(w, "  not answering: %s\n", st.NodeError)
	}
	fmt.Fprintf(w, "grastate (%s):\n", st.GrastatePath)
	if g := st.Grastate; g != nil {
		safe := 0
		if g.SafeToBootstrap {
			safe = 1
		}
		fmt.Fprintf(w, "  uuid %s, seqno %d, safe_to_bootstrap %d\n", g.UUID, g.Seqno, safe)
	} else {
		fmt.Fprintf(w, "  %s\n", st.GrastateError)
	}
	switch d := st.LastDecision; {
	case d != nil:
		fmt.Fprintf(w, "last decision: %s, %s (%s ago)\n  %s\n  peers: %s\n", d.Action, d.Time.Local().Format("2006-01-02 15:04:05 MST"),
			now.Sub(d.Time).Round(time.Second), d.Reason, d.Peers)
	case st.DecisionError != "":
		fmt.Fprintf(w, "last decision: %s\n", st.DecisionError)
	default:
		fmt.Fprintf(w, "last decision: none (the node does not coordinate with peers, or never waited)\n")
	}
	switch {
	case st.Maintenance != nil:
		fmt.Fprintln(w, describeMaintenance(st.Maintenance, filepath.Dir(st.GrastatePath), now))
	case st.MaintenanceError != "":
		fmt.Fprintf(w, "maintenance: %s\n", st.MaintenanceError)
	}
	switch s := st.LastSST; {
	case s != nil:
		fmt.Fprintf(w, "last SST:\n  %s\n", s)
	case st.Unit == nil:
		fmt.Fprintf(w, "last SST:    unknown (no unit to read the journal of)\n")
	default:
		fmt.Fprintf(w, "last SST:    none in the journal\n")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// SSTRecord is the last SST of a node, as its unit's journal tells it.
type SSTRecord struct {
	Role    string    `json:"role"`
	Method  string    `json:"method,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome string    `json:"outcome"` // running, succeeded, failed
	Detail  string    `json:"detail,omitempty"`
}

func (s *SSTRecord) String() string {
	var b strings.Builder
	b.WriteString(s.Role)
	if s.Method != "" {
		b.WriteString(" by " + s.Method)
	}
	if s.Peer != "" {
		b.WriteString(", peer " + s.Peer)
	}
	fmt.Fprintf(&b, ", started %s", s.Start.Format("2006-01-02 15:04:05 MST"))
	switch s.Outcome {
	case "running":
		b.WriteString(", still running")
	default:
		fmt.Fprintf(&b, ", %s after %s", s.Outcome, s.End.Sub(s.Start).Round(time.Second))
	}
	if s.Detail != "" {
		b.WriteString(": " + s.Detail)
	}
	return b.String()
}

type journalEntry struct {
	Time    time.Time
	Message string
	Fields  map[string]string // the sstFields the entry has
}

// sstFields are the journal fields of the supervisor's SST entries
// (supervisor/sstwatch.go), which lastSST reads.
var sstFields = []string{"SST_ROLE", "SST_METHOD", "SST_PHASE", "SST_PEER", "SST_ERROR"}

// lastSSTFromJournal reads the unit's journal with journalctl.
func lastSSTFromJournal(ctx context.Context, unitName string) (*SSTRecord, error) {
	cmd := exec.CommandContext(ctx, "journalctl", "--no-pager", "-o", "json", "-n", "20000",
		"--output-fields=MESSAGE,"+strings.Join(sstFields, ","), "-u", unitName)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl -u %s: %w", unitName, err)
	}
	entries, err := parseJournalJSON(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("journalctl -u %s: %w", unitName, err)
	}
	return lastSST(entries), nil
}

// parseJournalJSON reads journalctl -o json: one object per line, MESSAGE
// and the fields a string or, when not UTF-8, an array of bytes.
func parseJournalJSON(r io.Reader) ([]journalEntry, error) {
	var out []journalEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("journal entry: %w", err)
		}
		us, _ := strconv.ParseInt(journalValue(e["__REALTIME_TIMESTAMP"]), 10, 64)
		je := journalEntry{Time: time.UnixMicro(us), Message: journalValue(e["MESSAGE"])}
		for _, f := range sstFields {
			if v, ok := e[f]; ok {
				if je.Fields == nil {
					je.Fields = map[string]string{}
				}
				je.Fields[f] = journalValue(v)
			}
		}
		out = append(out, je)
	}
	return out, sc.Err()
}

// journalValue is a field of journalctl -o json: a string, or an array of
// bytes when it is not UTF-8.
func journalValue(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var raw []byte
	var ints []int
	if json.Unmarshal(v, &ints) == nil {
		for _, i := range ints {
			raw = append(raw, byte(i))
		}
	}
	return string(raw)
}

var (
	// An older supervisor's: "galera-supervisor: SST joiner native-copy:
	// receiving 127.0.0.1:4444" and "SST joiner failed: reason".
	supSSTRe = regexp.MustCompile(`SST (joiner|donor) (\S*): (\w+)\s*(.*)$`)
	// mariadbd: WSREP: Running: 'wsrep_sst_rsync --role 'joiner' ...
	srvRunRe = regexp.MustCompile(`WSREP: Running: 'wsrep_sst_(\S+) --role '(joiner|donor)'`)
	// mariadbd: WSREP: SST received: uuid:seqno / SST sent: / SST failed: ...
	srvEndRe  = regexp.MustCompile(`WSREP: (SST received|SST sent|SST succeeded|SST failed|State transfer to .* failed)(.*)$`)
	supFailRe = regexp.MustCompile(`SST joiner failed: (.*)$`)
)

// lastSST finds the last SST in a unit's journal, in time order.
func lastSST(entries []journalEntry) *SSTRecord {
	var cur *SSTRecord
	begin := func(role, method string, t time.Time) {
		if cur != nil && cur.Outcome == "running" && cur.Role == role {
			if cur.Method == "" {
				cur.Method = method
			}
			return
		}
		cur = &SSTRecord{Role: role, Method: method, Start: t, Outcome: "running"}
	}
	end := func(outcome, detail string, t time.Time) {
		if cur == nil || cur.Outcome != "running" {
			return
		}
		cur.Outcome, cur.End = outcome, t
		if detail != "" {
			cur.Detail = detail
		}
	}
	for _, e := range entries {
		if m := srvRunRe.FindStringSubmatch(e.Message); m != nil {
			begin(m[2], m[1], e.Time)
			continue
		}
		f := e.Fields
		if f == nil {
			// Text that reached the journal by the stderr stream.
			f = map[string]string{}
			for k, v := range logging.ParseAttrs(e.Message) {
				f[strings.ToUpper(k)] = v
			}
		}
		if strings.Contains(e.Message, "SST joiner failed") && f["SST_ERROR"] != "" {
			end("failed", f["SST_ERROR"], e.Time)
			continue
		}
		if m := supFailRe.FindStringSubmatch(e.Message); m != nil {
			end("failed", m[1], e.Time)
			continue
		}
		var role, method, phase, peer string
		if f["SST_PHASE"] != "" && (f["SST_ROLE"] == "joiner" || f["SST_ROLE"] == "donor") {
			role, method, phase, peer = f["SST_ROLE"], f["SST_METHOD"], f["SST_PHASE"], f["SST_PEER"]
		} else if m := supSSTRe.FindStringSubmatch(e.Message); m != nil {
			role, method, phase, peer = m[1], m[2], m[3], strings.TrimSpace(m[4])
		}
		if phase != "" {
			switch phase {
			case "done":
				end("succeeded", "", e.Time)
			case "failed":
				end("failed", peer, e.Time)
			default:
				begin(role, method, e.Time)
				if peer != "" {
					cur.Peer = peer
				}
			}
			continue
		}
		if m := srvEndRe.FindStringSubmatch(e.Message); m != nil {
			detail := strings.TrimSpace(strings.TrimPrefix(m[2], ":"))
			switch {
			case strings.HasPrefix(m[1], "SST received"), strings.HasPrefix(m[1], "SST succeeded"), strings.HasPrefix(m[1], "SST sent"):
				end("succeeded", "position "+detail, e.Time)
			default:
				end("failed", m[1]+m[2], e.Time)
			}
		}
	}
	return cur
}
