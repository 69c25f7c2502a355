package sst

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseArgsObserved(t *testing.T) {
	tests := []struct {
		name string
		argv string // split on spaces, as sh -c does for these
		want Args
	}{{
		// evidence/rsync-joiner.argv-env.txt
		name: "joiner",
		argv: "--role joiner --address 127.0.0.1:24444 --datadir /tmp/gal/n2/ --defaults-file /tmp/gal/n2.cnf --parent 25408 --progress 0 --binlog mysql-bin --mysqld-args --defaults-file=/tmp/gal/n2.cnf --init-connect=SET",
		want: Args{Role: Joiner, Address: "127.0.0.1:24444", Datadir: "/tmp/gal/n2/", DefaultsFile: "/tmp/gal/n2.cnf",
			Parent: 25408, Binlog: "mysql-bin", MysqldArgs: []string{"--defaults-file=/tmp/gal/n2.cnf", "--init-connect=SET"}},
	}, {
		name: "donor",
		argv: "--role donor --address 127.0.0.1:24444/rsync_sst --local-port 13306 --socket /tmp/gal/n1.sock --progress 0 --datadir /tmp/gal/n1/ --defaults-file /tmp/gal/n1.cnf --gtid e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:5 --gtid-domain-id 0 --binlog mysql-bin --mysqld-args --defaults-file=/tmp/gal/n1.cnf --wsrep-new-cluster",
		want: Args{Role: Donor, Address: "127.0.0.1:24444/rsync_sst", LocalPort: 13306, Socket: "/tmp/gal/n1.sock", Datadir: "/tmp/gal/n1/",
			DefaultsFile: "/tmp/gal/n1.cnf", GTID: "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:5", GTIDDomainID: "0", Binlog: "mysql-bin",
			MysqldArgs: []string{"--defaults-file=/tmp/gal/n1.cnf", "--wsrep-new-cluster"}},
	}, {
		name: "bypass, progress, no role means donor, unknown flags ignored",
		argv: "--address [::1]:4444/x --datadir /d --progress 1 --bypass --frobnicate --gtid-domain-id 7 --binlog-index /b/idx",
		want: Args{Role: Donor, Address: "[::1]:4444/x", Datadir: "/d", Progress: true, Bypass: true, GTIDDomainID: "7", BinlogIndex: "/b/idx"},
	}, {
		name: "equals form, loose prefix, underscores, mysqld-args dirs",
		argv: "--role=joiner --address=h --datadir=/d --parent=9 --mysqld-args --loose-innodb_log_group_home_dir=/logs --innodb-undo-directory undo --log-bin=/bl/mb --aria_log_dir_path=aria",
		want: Args{Role: Joiner, Address: "h", Datadir: "/d", Parent: 9, InnoDBLogGroupHomeDir: "/logs", InnoDBUndoDirectory: "undo",
			Binlog: "/bl/mb", AriaLogDirPath: "aria",
			MysqldArgs: []string{"--loose-innodb_log_group_home_dir=/logs", "--innodb-undo-directory", "undo", "--log-bin=/bl/mb", "--aria_log_dir_path=aria"}},
	}, {
		name: "top level wins over mysqld-args; binlog 0 is off",
		argv: "--role joiner --address h --datadir /d --innodb-data-home-dir /top --binlog 0 --mysqld-args --innodb-data-home-dir=/inner",
		want: Args{Role: Joiner, Address: "h", Datadir: "/d", InnoDBDataHomeDir: "/top", MysqldArgs: []string{"--innodb-data-home-dir=/inner"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(strings.Fields(tt.argv))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseArgs:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, argv := range []string{
		"--role joiner --datadir /d", // no address
		"--role joiner --address h",  // no datadir
		"--role sideways --address h --datadir /d",
		"--role joiner --address h --datadir /d --parent x",
		"--role joiner --address h --datadir /d --parent",
		"--address h --datadir /d --gtid-domain-id -1",
	} {
		_, err := ParseArgs(strings.Fields(argv))
		if err == nil {
			t.Errorf("ParseArgs(%q): no error", argv)
			continue
		}
		if ExitCode(err) != int(EINVAL) {
			t.Errorf("ParseArgs(%q): exit %d, want EINVAL: %v", argv, ExitCode(err), err)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("--role\x00joiner\x00--address\x00h\x00--datadir\x00/d\x00--mysqld-args\x00--x")
	f.Add("--address=h\x00--datadir=/d\x00--bypass\x00--parent\x00")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(strings.Split(s, "\x00"))
		if err != nil {
			if ExitCode(err) != int(EINVAL) {
				t.Fatalf("error without EINVAL: %v", err)
			}
			return
		}
		if a.Role != Joiner && a.Role != Donor || a.Datadir == "" || a.Address == "" {
			t.Fatalf("accepted incomplete args: %+v", a)
		}
	})
}

func TestParseState(t *testing.T) {
	st, err := ParseState("e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:5 0\n")
	if err != nil || st.Seqno != 5 || st.Domain != "0" || st.String() != "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:5 0" {
		t.Fatalf("ParseState = %+v, %v", st, err)
	}
	if st, err := ParseState("00000000-0000-0000-0000-000000000000:-1"); err != nil || st.Domain != "" {
		t.Fatalf("ParseState(-1) = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "x:1", "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4", "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:a", "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:1 x", "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:-2"} {
		if _, err := ParseState(bad); err == nil {
			t.Errorf("ParseState(%q): no error", bad)
		}
	}
}

func TestMapOptions(t *testing.T) {
	m := MapOptions{"sst": {"a": ""}, "mysqld": {"a": "x"}}
	if v, ok := m.Lookup([]string{"sst", "mysqld"}, "a"); v != "x" || !ok {
		t.Fatalf("first non-empty group should win: %q %v", v, ok)
	}
}
