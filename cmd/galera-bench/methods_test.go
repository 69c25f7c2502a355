package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the SST method links: run as
// wsrep_sst_native-copy it answers like a built method, as
// wsrep_sst_native-backup like the skeleton's placeholder.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "wsrep_sst_native-copy":
		fmt.Println("Usage: wsrep_sst_native-copy --role joiner|donor ...")
		os.Exit(0)
	case "wsrep_sst_native-backup":
		fmt.Fprintln(os.Stderr, `wsrep_sst_native-backup: sst: unknown method "native-backup" (have native-copy)`)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func fakeBin(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"wsrep_sst_native-copy", "wsrep_sst_native-backup"} {
		if err := os.Symlink(exe, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(ms []method) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

func TestResolveMethods(t *testing.T) {
	bin := fakeBin(t)
	ctx := context.Background()
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }

	ms, err := resolveMethods(ctx, []string{"all"}, false, bin, logf)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ms); got != "rsync,native-copy,mariabackup" {
		t.Errorf("all = %s; want native-backup skipped as not built", got)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "native-backup") {
		t.Errorf("skip not logged: %q", logged)
	}

	ms, err = resolveMethods(ctx, []string{"all"}, true, bin, logf)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ms); got != "rsync,native-copy,native-copy+lz4,mariabackup,mariabackup+lz4" {
		t.Errorf("all with -lz4 = %s", got)
	}
	want := method{Name: "mariabackup+lz4", SST: "mariabackup", LZ4: true}
	if !reflect.DeepEqual(ms[4], want) {
		t.Errorf("mariabackup+lz4 = %+v, want %+v", ms[4], want)
	}
	if o := ms[4].sstOptions(nil); !reflect.DeepEqual(o, map[string]string{"time": "1", "compressor": "lz4 -z", "decompressor": "lz4 -d"}) {
		t.Errorf("lz4 [sst] options = %v", o)
	}
	if o := deltaMethods[1].sstOptions(map[string]string{"delta": "1", "time": "0"}); o["delta"] != "0" || o["time"] != "0" {
		t.Errorf("a method's own [sst] options go over -sst: %v", o)
	}
	if o := ms[0].sstOptions(map[string]string{"transfer-streams": "2"}); o["compressor"] != "" || o["decompressor"] != "" || o["time"] != "1" || o["transfer-streams"] != "2" {
		t.Errorf("rsync [sst] options = %v", o)
	}

	ms, err = resolveMethods(ctx, []string{"mariabackup+lz4", "rsync", "rsync"}, false, bin, logf)
	if err != nil || names(ms) != "mariabackup+lz4,rsync" {
		t.Errorf("explicit list = %s, %v", names(ms), err)
	}

	for _, bad := range []string{"native-backup", "rsync+lz4", "mariabackup+zstd", "scp"} {
		if _, err := resolveMethods(ctx, []string{bad}, false, bin, logf); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := resolveMethods(ctx, []string{"native-copy"}, false, t.TempDir(), logf); err == nil {
		t.Error("native-copy without its link: no error")
	}
}

func TestWithBaseline(t *testing.T) {
	bin, old := fakeBin(t), fakeBin(t)
	ctx := context.Background()
	ms, err := resolveMethods(ctx, []string{"rsync", "native-copy", "mariabackup"}, true, bin, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ms, err = withBaseline(ctx, ms, old)
	if err != nil {
		t.Fatal(err)
	}
	want := "rsync,native-copy,native-copy@baseline,native-copy+lz4,native-copy+lz4@baseline,mariabackup,mariabackup+lz4"
	if got := names(ms); got != want {
		t.Errorf("with -baseline = %s, want %s", got, want)
	}
	if ms[1].BinDir != "" || ms[2].BinDir != old || ms[2].SST != "native-copy" || !ms[2].Native || ms[4].BinDir != old || !ms[4].LZ4 {
		t.Errorf("baseline runs = %+v, %+v, %+v", ms[1], ms[2], ms[4])
	}

	// The fake's native-backup is the placeholder; a dir without links has none.
	nb := []method{{Name: "native-backup", SST: "native-backup", Native: true}}
	if _, err := withBaseline(ctx, nb, old); err == nil || !strings.Contains(err.Error(), "-baseline: native-backup") {
		t.Errorf("baseline without native-backup: %v", err)
	}
	if _, err := withBaseline(ctx, ms[:2], t.TempDir()); err == nil {
		t.Error("empty baseline dir: no error")
	}
}

func TestSchedule(t *testing.T) {
	groups := [][]string{{"cp -r"}, {"native-copy", "native-copy@baseline"}, {"rsync"}}
	want := []string{
		"cp -r,native-copy,native-copy@baseline,rsync",
		"native-copy@baseline,native-copy,rsync,cp -r",
		"rsync,cp -r,native-copy,native-copy@baseline",
		"cp -r,native-copy@baseline,native-copy,rsync",
	}
	for round := 1; round <= len(want); round++ {
		if got := strings.Join(schedule(groups, round), ","); got != want[round-1] {
			t.Errorf("round %d: %s, want %s", round, got, want[round-1])
		}
	}
}
