package nativebackup

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestBackupArgs(t *testing.T) {
	b := backupSpec{
		DefaultsFile: "/etc/my.cnf", DefaultsGroupSuffix: ".2",
		Datadir: "/var/lib/mysql/", TargetDir: "/tmp/t", TmpDir: "/tmp/t", Parallel: "4",
		User: "sst", Socket: "/run/mysqld.sock", InnoBackupOpts: " --ftwrl-wait-timeout=30  --x ",
		MysqldArgs: []string{"--defaults-file=/etc/my.cnf", "--wsrep-new-cluster", "--user", "mysql", "--loose-innodb_data_home_dir=/d", "--port=3307", "--log-bin", "--innodb-buffer-pool-size=1G", "--wsrep_provider_options=a=b"},
	}
	want := []string{"--defaults-file=/etc/my.cnf", "--defaults-group-suffix=.2", "--backup", "--no-version-check", "--parallel=4",
		"--databases-exclude=lost+found", "--ftwrl-wait-timeout=30", "--x", "--tmpdir=/tmp/t", "--user=sst", "--socket=/run/mysqld.sock",
		"--galera-info", "--stream=mbstream", "--target-dir=/tmp/t", "--datadir=/var/lib/mysql/",
		"--mysqld-args", "--wsrep-new-cluster", "--wsrep_provider_options=a=b"}
	if got := b.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
	for _, a := range b.args() {
		if strings.Contains(a, "password") {
			t.Errorf("a password on argv: %q", a)
		}
	}
	// use-extra: host and extra-port instead of the socket.
	b.Host, b.Port = "127.0.0.1", "3310"
	got := strings.Join(b.args(), " ")
	if !strings.Contains(got, "--host=127.0.0.1 --port=3310") || strings.Contains(got, "--socket") {
		t.Errorf("use-extra args: %s", got)
	}
}

func TestPrepareArgs(t *testing.T) {
	p := prepareSpec{TargetDir: "/d/.sst-native", UseMemory: "1G", InnoDBForceRecovery: "1", InnoApplyOpts: "--a"}
	want := []string{"--prepare", "--no-version-check", "--innodb-force-recovery=1", "--a", "--use-memory=1G", "--target-dir=/d/.sst-native", "--datadir=/d/.sst-native"}
	if got := p.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
}

func TestFindBackup(t *testing.T) {
	look := func(have ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, h := range have {
				if h == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", errors.New("not found: " + n)
		}
	}
	if p, err := findBackup(look("mariadb-backup", "mariabackup")); err != nil || p != "/usr/bin/mariadb-backup" {
		t.Errorf("both: %q %v", p, err)
	}
	if p, err := findBackup(look("mariabackup")); err != nil || p != "/usr/bin/mariabackup" {
		t.Errorf("fallback: %q %v", p, err)
	}
	if _, err := findBackup(look()); err == nil || !strings.Contains(err.Error(), "mariadb-backup") {
		t.Errorf("none: %v", err)
	}
}

func TestLogErrors(t *testing.T) {
	lines := strings.Split("[00] starting\n[00] Connecting to server\n[00] 2026 Failed to connect to MariaDB server: Access denied for user 'x'@'localhost' (using password: YES).\n\n", "\n")
	if got := logErrors(lines, 3); !strings.Contains(got, "Access denied for user 'x'") || strings.Contains(got, "starting") {
		t.Errorf("errors: %q", got)
	}
	if got := logErrors([]string{"a", "b", "c", "d", ""}, 6); got != "b | c | d" {
		t.Errorf("tail: %q", got)
	}
}

func TestBackupOnly(t *testing.T) {
	for name, want := range map[string]bool{
		"xtrabackup_checkpoints": true, "xtrabackup_galera_info": true, "donor_galera_info": true, "backup-my.cnf": true,
		"mariadb_backup_info": true, "ibdata1": false, "ib_logfile0": false, "mysql": false, "aria_log_control": false,
	} {
		if backupOnly(name) != want {
			t.Errorf("backupOnly(%q) = %v", name, !want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	a, secret, err := parseAddress("CN:x@127.0.0.1:4444/native_backup/abc123")
	if err != nil || secret != "abc123" || a.Port != 4444 || a.Host != "127.0.0.1" {
		t.Errorf("%+v %q %v", a, secret, err)
	}
	for _, bad := range []string{"127.0.0.1:4444/xtrabackup_sst//1", "127.0.0.1:4444", "127.0.0.1/native_backup/"} {
		if _, _, err := parseAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
