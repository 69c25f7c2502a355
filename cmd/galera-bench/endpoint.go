package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// The -endpoint bench: a one-node cluster under the built supervisor with
// http-address set, its clustercheck at / asked over loopback, first not
// at all, then at a paced 1,000 requests/s, then as fast as -endpoint-clients
// connections go. Each window measures the supervisor's and mariadbd's CPU
// (/proc/PID/stat) and mariadbd's statement count (Questions): the
// endpoint answers from the supervisor's state, so only the supervisor's
// CPU should move.

// endpointWindow is one measured window.
type endpointWindow struct {
	Name        string  `json:"name"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	RPS         float64 `json:"requests_per_second"`
	SupCPU      float64 `json:"supervisor_cpu_percent"` // of one core
	MariadbdCPU float64 `json:"mariadbd_cpu_percent"`
	QPS         float64 `json:"mariadbd_questions_per_second"`
	// AddedCPU is the supervisor's CPU above the idle window, and
	// MicrosPerReq that per request.
	AddedCPU     float64 `json:"supervisor_added_cpu_percent"`
	MicrosPerReq float64 `json:"supervisor_cpu_us_per_request,omitempty"`
}

func runEndpointBench(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, "galera-bench: "+f+"\n", a...) }
	c, err := galeratest.New(ctx, galeratest.Config{Dir: cfg.baseDir, Nodes: 1, PathPrepend: []string{cfg.binDir},
		Keep: cfg.keep, StopTimeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("stop cluster: %w", cerr)
		}
	}()
	// The health loop at its default period, as a unit runs it.
	sv, err := c.Supervise(galeratest.SupervisorConfig{Binary: filepath.Join(cfg.binDir, "galera-supervisor"), HTTP: true,
		Args: []string{"--health-interval=1s"},
		// One node has no peers to coordinate with.
		Options: map[string]string{"peer-secret-file": "", "peers": "", "auto-bootstrap": "", "peer-address": ""}})
	if err != nil {
		return err
	}
	n := c.Node(1)
	if err := sv.Start(ctx, n, "--wsrep-new-cluster"); err != nil {
		return err
	}
	url := "http://" + sv.HTTPAddress(n) + "/"
	logf("waiting for node1 to be Synced behind %s", url)
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node1 never answered 200 at %s; its log: %s", url, n.SupervisorLog())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	sup, db := n.PID(), n.Mariadbd()
	if sup == 0 || db == 0 {
		return fmt.Errorf("node1: supervisor pid %d, mariadbd pid %d", sup, db)
	}
	questions := func() int64 {
		s, _ := n.QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='QUESTIONS'")
		v, _ := strconv.ParseInt(s, 10, 64)
		return v
	}
	measure := func(name string, d time.Duration, rate float64, clients int) endpointWindow {
		s0, m0, q0, t0 := cpuTicks(sup), cpuTicks(db), questions(), time.Now()
		req, errs := hammer(ctx, url, d, rate, clients)
		el := time.Since(t0).Seconds()
		s1, m1, q1 := cpuTicks(sup), cpuTicks(db), questions()
		w := endpointWindow{Name: name, Seconds: el, Requests: req, Errors: errs, RPS: float64(req) / el,
			SupCPU: ticksPercent(s1-s0, el), MariadbdCPU: ticksPercent(m1-m0, el), QPS: float64(q1-q0-1) / el}
		logf("%s: %d requests (%d errors) in %.1fs, supervisor CPU %.2f%%, mariadbd CPU %.2f%%", name, req, errs, el, w.SupCPU, w.MariadbdCPU)
		return w
	}
	secs := cfg.endpointWindowLen
	idle := measure("idle", secs, 0, 0)
	paced := measure("1,000 checks/s", secs, 1000, 4)
	full := measure(fmt.Sprintf("as fast as %d clients go", cfg.endpointClients), secs, 0, cfg.endpointClients)
	ws := []endpointWindow{idle, paced, full}
	for i := 1; i < len(ws); i++ {
		ws[i].AddedCPU = ws[i].SupCPU - idle.SupCPU
		if ws[i].Requests > 0 {
			ws[i].MicrosPerReq = ws[i].AddedCPU / 100 * ws[i].Seconds / float64(ws[i].Requests) * 1e6
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "| window | requests/s | errors | supervisor CPU %% | added CPU %% | CPU µs/request | mariadbd CPU %% | mariadbd statements/s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range ws {
		fmt.Fprintf(&md, "| %s | %.0f | %d | %.2f | %.2f | %.1f | %.2f | %.1f |\n", w.Name, w.RPS, w.Errors, w.SupCPU, w.AddedCPU, w.MicrosPerReq, w.MariadbdCPU, w.QPS)
	}
	fmt.Fprintf(&md, "\nOne node, health loop every 1 s, %s windows, GET / on a new connection each (Connection: close), loopback; CPU from /proc/PID/stat, %% of one core.\n", secs)
	fmt.Fprint(stdout, md.String())
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(ws, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.out, "endpoint.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.out, "endpoint.md"), []byte(md.String()), 0o644)
}

// hammer asks url for d from clients goroutines, at rate requests/s in
// all (0: as fast as they go); clients 0 asks nothing and waits d.
func hammer(ctx context.Context, url string, d time.Duration, rate float64, clients int) (req, errs int64) {
	if clients == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var nreq, nerr atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if rate > 0 {
				t := time.NewTicker(time.Duration(float64(clients) / rate * float64(time.Second)))
				defer t.Stop()
				tick = t.C
			}
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick:
					}
				}
				resp, err := cl.Get(url)
				if err != nil {
					if ctx.Err() == nil {
						nerr.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				nreq.Add(1)
				if resp.StatusCode != http.StatusOK {
					nerr.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nreq.Load(), nerr.Load()
}

// ticksPercent is CPU ticks (clockTicks) over el seconds as a
// percentage of one core.
func ticksPercent(ticks int64, el float64) float64 { return float64(ticks) / clockTicks / el * 100 }
