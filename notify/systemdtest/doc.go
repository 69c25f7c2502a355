// Package systemdtest boots a real systemd, journald and system D-Bus in
// systemd-nspawn, on a debootstrapped Debian rootfs, for tests that must meet
// the real service manager: Type=notify, start timeouts and their extension,
// the watchdog, stop and the unit's cgroup.
//
//	func TestSystemdX(t *testing.T) {
//		m := systemdtest.Boot(t, systemdtest.Config{BindRO: []string{bin + ":/opt/x"}})
//		m.WriteFile("/etc/systemd/system/x.service", unit, 0o644)
//		m.Systemctl(ctx, "daemon-reload")
//		m.Systemctl(ctx, "start", "x.service")
//		m.Show(ctx, "x.service", "StatusText")
//	}
//
// Boot calls Require (skip under -short or without root, systemd-nspawn,
// debootstrap; fail instead when GS_TEST_REAL=1) and tears the machine down
// with t.Cleanup: an orderly poweroff, SIGKILL after 30 s, then the
// machine's cgroup is killed and removed. When the test binary dies, nspawn
// gets SIGTERM (Pdeathsig).
//
// The rootfs is built once and cached (Rootfs, CacheDir): debootstrap of
// Debian bookworm from the mirror in the host's apt sources, plus Packages.
// The cache is named by a hash of everything that goes into it and appears
// under its final name only when complete. Every machine boots it with
// --volatile=overlay (a tmpfs upper layer), so each test starts from a clean
// tree and several machines may share it. The network is private (loopback
// only) unless Config.HostNetwork.
//
// Environment: GS_NSPAWN_CACHE (default /var/cache/galera-supervisor),
// GS_DEBIAN_MIRROR (default: from /etc/apt/sources.list{,.d/*}).
//
// On a host whose PID 1 is not systemd there is no host bus: nspawn runs
// with --register=no --keep-unit, and each machine starts in a cgroup of its
// own in every hierarchy, or two machines would share nspawn's payload/.
package systemdtest
