// Package systemdtest boots a real systemd, journald and system D-Bus in
// systemd-nspawn, on a debootstrapped Debian rootfs, for tests that must meet
// the real service manager: Type=notify, start timeouts and their extension,
// the watchdog, stop and the unit's cgroup.
//
// The rootfs is built once and cached (see Rootfs and CacheDir); every
// machine boots it with a tmpfs overlay, so each test starts from a clean
// tree and several machines may share it.
package systemdtest
