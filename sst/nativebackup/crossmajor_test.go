package nativebackup

import "testing"

func TestBackupVersion(t *testing.T) {
	for out, want := range map[string]string{
		"mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)": "10.11.19",
		"mariabackup based on MariaDB server 10.5.27-MariaDB Linux (x86_64)":                "10.5.27",
	} {
		m := reBackupVersion.FindStringSubmatch(out)
		if m == nil || m[1]+"."+m[2]+"."+m[3] != want {
			t.Errorf("%q: %v, want %s", out, m, want)
		}
	}
}
