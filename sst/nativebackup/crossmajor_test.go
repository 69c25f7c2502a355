package nativebackup

import "testing"

func TestRedoFormat(t *testing.T) {
	for v, want := range map[string]int{"10.4.34": 0, "10.5.0": 1, "10.6.99": 1, "10.7.8": 1, "10.8.1": 2, "10.11.19": 2, "11.4.2": 2, "junk": -1} {
		if got, _ := redoFormat(v); got != want {
			t.Errorf("redoFormat(%s) = %d, want %d", v, got, want)
		}
	}
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
