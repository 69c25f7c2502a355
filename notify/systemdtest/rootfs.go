package systemdtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Suite is the Debian release the rootfs is bootstrapped from; the host runs
// the same one, so the statically built binaries and the stock packages match.
const Suite = "bookworm"

// recipeVersion changes whenever the build steps below change, so that an old
// cached rootfs is not reused.
const recipeVersion = "2"

// basePackages go into debootstrap's --include; Packages are installed with
// apt afterwards (debootstrap's resolver is too simple for mariadb-server).
var (
	basePackages = []string{"systemd", "systemd-sysv", "dbus", "procps", "iproute2"}
	// Packages is what the tests need inside the container.
	Packages = []string{
		"mariadb-server", "mariadb-client", "mariadb-backup", "galera-4",
		"rsync", "socat", "psmisc", "lsof",
	}
)

// CacheDir holds the built rootfs between runs. GS_NSPAWN_CACHE overrides it.
func CacheDir() string {
	if d := os.Getenv("GS_NSPAWN_CACHE"); d != "" {
		return d
	}
	return "/var/cache/galera-supervisor"
}

// Sources is the part of the host's apt configuration the rootfs copies.
type Sources struct {
	Mirror   string // main archive, e.g. http://deb.debian.org/debian
	Security string // security archive, or "" when the host has none
}

// HostSources reads the Debian mirror from the host's apt configuration
// (/etc/apt/sources.list and /etc/apt/sources.list.d/*), so that no host
// name is written into the project. GS_DEBIAN_MIRROR overrides it.
func HostSources() (Sources, error) {
	if m := os.Getenv("GS_DEBIAN_MIRROR"); m != "" {
		return Sources{Mirror: m}, nil
	}
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	var all []aptSource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(f, ".sources"):
			all = append(all, parseDeb822(string(b))...)
		case strings.HasSuffix(f, ".list"):
			all = append(all, parseOneLine(string(b))...)
		}
	}
	s := pickSources(all)
	if s.Mirror == "" {
		return s, fmt.Errorf("no Debian %s mirror in %s or %s; set GS_DEBIAN_MIRROR",
			Suite, "/etc/apt/sources.list", "/etc/apt/sources.list.d/")
	}
	return s, nil
}

type aptSource struct {
	uri    string
	suites []string
}

// parseDeb822 reads the URIs: and Suites: fields of each stanza of a
// .sources file. Stanzas with Enabled: no are skipped.
func parseDeb822(text string) []aptSource {
	var out []aptSource
	var cur aptSource
	var uris []string
	enabled := true
	flush := func() {
		if enabled {
			for _, u := range uris {
				out = append(out, aptSource{uri: u, suites: cur.suites})
			}
		}
		cur, uris, enabled = aptSource{}, nil, true
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "uris":
			uris = strings.Fields(v)
		case "suites":
			cur.suites = strings.Fields(v)
		case "enabled":
			enabled = strings.TrimSpace(strings.ToLower(v)) != "no"
		}
	}
	flush()
	return out
}

// parseOneLine reads "deb [opts] URI SUITE COMPONENT..." lines.
func parseOneLine(text string) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{uri: f[0], suites: []string{f[1]}})
	}
	return out
}

// pickSources chooses the first source serving Suite as the mirror and the
// first serving Suite-security as the security archive.
func pickSources(all []aptSource) Sources {
	var s Sources
	for _, a := range all {
		for _, suite := range a.suites {
			switch {
			case suite == Suite && s.Mirror == "":
				s.Mirror = strings.TrimSuffix(a.uri, "/")
			case suite == Suite+"-security" && s.Security == "":
				s.Security = strings.TrimSuffix(a.uri, "/")
			}
		}
	}
	return s
}

// stamp names a rootfs by everything that goes into it.
func stamp(src Sources) string {
	h := sha256.New()
	fmt.Fprintln(h, recipeVersion, Suite, src.Mirror, src.Security)
	fmt.Fprintln(h, strings.Join(basePackages, ","))
	fmt.Fprintln(h, strings.Join(Packages, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

var rootfsOnce struct {
	sync.Mutex
	path string
}

// Rootfs returns the path of the cached rootfs, building it first when it is
// missing. Concurrent callers, in this process or others, wait on a file lock;
// a rootfs is only visible under its final name once it is complete.
func Rootfs(ctx context.Context, logf func(string, ...any)) (string, error) {
	rootfsOnce.Lock()
	defer rootfsOnce.Unlock()
	if rootfsOnce.path != "" {
		return rootfsOnce.path, nil
	}
	src, err := HostSources()
	if err != nil {
		return "", err
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create rootfs cache: %w", err)
	}
	final := filepath.Join(dir, "nspawn-rootfs-"+stamp(src))
	if _, err := os.Stat(filepath.Join(final, ".complete")); err == nil {
		rootfsOnce.path = final
		return final, nil
	}
	lockPath := filepath.Join(dir, "nspawn-rootfs.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", lockPath, err)
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return "", fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if _, err := os.Stat(filepath.Join(final, ".complete")); err == nil {
		rootfsOnce.path = final
		return final, nil // another process built it while we waited
	}
	start := time.Now()
	logf("systemdtest: building rootfs %s from %s (once; later runs reuse it)", final, src.Mirror)
	if err := build(ctx, final, src, logf); err != nil {
		return "", err
	}
	logf("systemdtest: rootfs built in %s", time.Since(start).Round(time.Second))
	rootfsOnce.path = final
	return final, nil
}

func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func build(ctx context.Context, final string, src Sources, logf func(string, ...any)) error {
	tmp := final + ".build"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	logPath := final + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create %s: %w", logPath, err)
	}
	defer logFile.Close()
	fail := func(step string, err error) error {
		return fmt.Errorf("%s: %w (log: %s)\n%s", step, err, logPath, tail(logPath, 20))
	}

	t := time.Now()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(basePackages, ","), Suite, tmp, src.Mirror)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		return fail("debootstrap "+Suite+" from "+src.Mirror, err)
	}
	logf("systemdtest: debootstrap done in %s", time.Since(t).Round(time.Second))

	list := fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\n", src.Mirror, Suite, src.Mirror, Suite)
	if src.Security != "" {
		list += fmt.Sprintf("deb %s %s-security main\n", src.Security, Suite)
	}
	writes := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{"etc/apt/sources.list", list, 0o644},
		// minbase has no /etc/hosts; mariadb-install-db and clients need localhost.
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644},
		// Never let maintainer scripts start daemons during the build.
		{"usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755},
	}
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(tmp, w.path), []byte(w.data), w.mode); err != nil {
			return fmt.Errorf("write rootfs %s: %w", w.path, err)
		}
	}
	// debootstrap copies the host's hostname; nspawn's --machine name must win.
	os.Remove(filepath.Join(tmp, "etc/hostname"))

	t = time.Now()
	script := "apt-get update -q && apt-get install -y -q --no-install-recommends " +
		strings.Join(Packages, " ") + " && apt-get clean && rm -rf /var/lib/apt/lists/*"
	if err := runInRootfs(ctx, tmp, logFile, "sh", "-ec", script); err != nil {
		return fail("install packages in rootfs", err)
	}
	logf("systemdtest: packages installed in %s", time.Since(t).Round(time.Second))
	os.Remove(filepath.Join(tmp, "usr/sbin/policy-rc.d"))

	// A lean, deterministic boot: nothing starts that a test did not ask for.
	steps := [][]string{
		{"systemctl", "--root=" + tmp, "set-default", "multi-user.target"},
		{"systemctl", "--root=" + tmp, "mask", "--quiet", "console-getty.service", "getty@.service",
			"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
			"e2scrub_reap.service", "systemd-tmpfiles-clean.timer", "fstrim.timer", "man-db.timer"},
		{"systemctl", "--root=" + tmp, "disable", "--quiet", "mariadb.service"},
	}
	for _, s := range steps {
		c := exec.CommandContext(ctx, s[0], s[1:]...)
		c.Stdout, c.Stderr = logFile, logFile
		if err := c.Run(); err != nil {
			return fail(strings.Join(s, " "), err)
		}
	}
	for _, d := range []string{"var/log/journal", "opt/galera-supervisor"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("create rootfs %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return fmt.Errorf("mark rootfs complete: %w", err)
	}
	os.RemoveAll(final) // an incomplete leftover from a crash
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	return nil
}

// runInRootfs runs a command in the rootfs without booting it, on the host's
// network (apt needs the mirror), in a cgroup of its own.
func runInRootfs(ctx context.Context, root string, out io.Writer, args ...string) error {
	cg, err := newCgroup(fmt.Sprintf("gs-nspawn-build-%d", os.Getpid()))
	if err != nil {
		return err
	}
	defer cg.remove()
	nspawn := append(nspawnCommon(), "-D", root, "--pipe", "--resolv-conf=replace-host",
		"-E", "DEBIAN_FRONTEND=noninteractive", "-E", "PATH="+containerPath, "--")
	nspawn = append(nspawn, args...)
	cmd := cg.command(ctx, nspawn...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
