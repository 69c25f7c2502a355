package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"galera-supervisor", "completion", shell}, &out, &errOut); err != nil {
		t.Fatalf("completion %s: %v %s", shell, err, errOut.String())
	}
	return out.String()
}

// bashComplete runs the bash script's completion function in a real bash for
// the words typed so far (the last one is being completed).
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	return bashCompleteEnv(t, nil, script, words...)
}

func bashCompleteEnv(t *testing.T, env []string, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		strconv.Itoa(len(words)-1) + "\n_galera_supervisor\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

func TestCompletionBash(t *testing.T) {
	script := completionScript(t, "bash")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "my.cnf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"galera-supervisor", "bo"}, "bootstrap"},
		{[]string{"galera-supervisor", ""}, "run sst recover bootstrap status maintenance config version completion help"},
		{[]string{"galera-supervisor", "maintenance", ""}, "on off"},
		{[]string{"galera-supervisor", "help", "st"}, "status"},
		{[]string{"galera-supervisor", "config", ""}, "print check"},
		{[]string{"galera-supervisor", "completion", "z"}, "zsh"},
		{[]string{"galera-supervisor", "run", "--sst-st"}, "--sst-stall-timeout"},
		{[]string{"galera-supervisor", "status", "--u"}, "--unit"},
		{[]string{"galera-supervisor", "run", "--defaults-file", filepath.Join(dir, "m")}, filepath.Join(dir, "my.cnf")},
		// bash splits --defaults-file=/x at the "=".
		{[]string{"galera-supervisor", "run", "--defaults-file", "=", filepath.Join(dir, "m")}, filepath.Join(dir, "my.cnf")},
	} {
		got := strings.Join(bashComplete(t, script, tc.words...), " ")
		if got != tc.want {
			t.Errorf("complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	// --unit offers the node units systemd knows (a fake systemctl here).
	fake := filepath.Join(dir, "bin")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte(`#!/bin/sh
case "$1" in
list-units) echo "galera-supervisor@node1.service loaded active running MariaDB Galera node node1" ;;
list-unit-files) printf '%s\n' "galera-supervisor.service disabled enabled" "galera-supervisor@.service disabled enabled" "mariadb.service enabled enabled" ;;
esac
`), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
	if got := strings.Join(bashCompleteEnv(t, env, script, "galera-supervisor", "status", "--unit", "galera-supervisor"), " "); got !=
		"galera-supervisor@node1.service galera-supervisor.service" {
		t.Errorf("complete status --unit galera-supervisor: %q", got)
	}

	// Every option a command's help lists is completed.
	for _, cmd := range commands() {
		words := []string{"galera-supervisor", cmd.name, "--"}
		if subs := usageSubcommands(cmd.usage); len(subs) > 0 {
			words = []string{"galera-supervisor", cmd.name, subs[0], "--"}
		}
		got := bashComplete(t, script, words...)
		want := commandOptions(cmd)
		if len(got) != len(want) {
			t.Errorf("%s: completes %q, help lists %q", cmd.name, got, want)
		}
	}
	if opts := commandOptions(lookup("run")); !strings.Contains(strings.Join(opts, " "), "sst-stall-timeout") {
		t.Errorf("run's options from its help: %q", opts)
	}
}

// TestCompletionShells: zsh and fish accept their scripts.
func TestCompletionShells(t *testing.T) {
	for shell, check := range map[string][]string{"zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}} {
		path, err := exec.LookPath(check[0])
		if err != nil {
			if os.Getenv("GS_TEST_REAL") == "1" {
				t.Errorf("%s is needed to check its completion (make deps installs it): %v", shell, err)
			}
			continue
		}
		f := filepath.Join(t.TempDir(), shell)
		if err := os.WriteFile(f, []byte(completionScript(t, shell)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(path, append(check[1:], f)...).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s on its completion script: %v\n%s", shell, err, out)
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"galera-supervisor", "completion", "tcsh"}, &out, &errOut)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), `"tcsh"`) {
		t.Errorf("completion tcsh: %v (exit %d)", err, exitCode(err))
	}
}

// TestCompletionFish asks a real fish what it completes with the script.
func TestCompletionFish(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("fish is needed to check its completion (make deps installs it): %v", err)
		}
		t.Skipf("fish not installed: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "galera-supervisor.fish")
	if err := os.WriteFile(script, []byte(completionScript(t, "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "my.cnf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"galera-supervisor bo":                                             "bootstrap",
		"galera-supervisor run --sst-st":                                   "--sst-stall-timeout",
		"galera-supervisor config ":                                        "check print",
		"galera-supervisor completion b":                                   "bash",
		"galera-supervisor help re":                                        "recover",
		"galera-supervisor status --defaults-fil":                          "--defaults-file",
		"galera-supervisor run --defaults-file=" + filepath.Join(dir, "m"): "--defaults-file=" + filepath.Join(dir, "my.cnf"),
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, line)
		// fish keeps universal variables and history under these; not in $HOME
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CACHE_HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish complete -C %q: %v\n%s", line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" {
				got = append(got, w)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("fish complete -C %q: %q, want %q", line, got, want)
		}
	}
}
