package nativebackup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

func TestPlanOpenFiles(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tablespaces int
		hard        uint64
		closeFiles  bool
		flag        string // "" with refused false: the inherited limit suffices
		refused     bool
	}{
		{"few tables", 100, 4096, false, "--open-files-limit=356", false},
		{"within hard", 1200, 4096, false, "--open-files-limit=1456", false},
		{"exactly hard", 4096 - openFilesSlack, 4096, false, "--open-files-limit=4096", false},
		{"hard too low", 30000, 20000, false, "", true},
		{"close-files needs none", 30000, 20000, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planOpenFiles(tc.tablespaces, tc.hard, tc.closeFiles, "donor")
			if tc.refused {
				var se *sst.Error
				if !errors.As(err, &se) || se.Errno != sst.EMFILE {
					t.Fatalf("planOpenFiles = %v, want an EMFILE refusal", err)
				}
				for _, want := range []string{"30000 InnoDB tablespaces", "needs 30256 open files", "donor's hard limit RLIMIT_NOFILE is 20000", "LimitNOFILE=", "--close-files"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Flag != tc.flag {
				t.Errorf("flag %q, want %q", p.Flag, tc.flag)
			}
		})
	}
}

func TestHasCloseFiles(t *testing.T) {
	for opts, want := range map[string]bool{
		"":                              false,
		"--close-files":                 true,
		"--parallel=4  --close-files=1": true,
		"--close-files-x":               false,
		"--no-lock":                     false,
	} {
		if got := hasCloseFiles(opts); got != want {
			t.Errorf("hasCloseFiles(%q) = %v", opts, got)
		}
	}
}

func TestScanDatadir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"ibdata1": 10, "undo001": 5, "ib_logfile0": 1000, "galera.cache": 1000, "mysqld.err": 7,
		"db/t1.ibd": 20, "db/t1.frm": 3, "db/t2.ibd": 20, "db/r.isl": 2, ".sst-native/x.ibd": 100,
	}
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc := scanDatadir(dir)
	if sc.Tablespaces != 5 || sc.Payload != 10+5+20+3+20+2 {
		t.Errorf("scanDatadir = %+v, want 5 tablespaces, 60 bytes", sc)
	}
}

func TestBackupArgsOpenFiles(t *testing.T) {
	a := backupSpec{Datadir: "/d", TargetDir: "/t", OpenFilesLimit: "--open-files-limit=2000", InnoBackupOpts: "--open-files-limit=9000"}.args()
	got := strings.Join(a, " ")
	i, j := strings.Index(got, "--open-files-limit=2000"), strings.Index(got, "--open-files-limit=9000")
	if i < 0 || j < i {
		t.Errorf("args %q: want ours, then the user's inno-backup-opts (the last wins)", got)
	}
}
