package unit

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// The shapes godbus gives for a(sb) and a(sasbttttuii) inside a variant.
func TestDecodeProperties(t *testing.T) {
	env := [][]any{{"/run/mariadb-wsrep-new-cluster", true}, {"/etc/default/x", false}}
	if got := envFiles(env); !reflect.DeepEqual(got, []string{"/run/mariadb-wsrep-new-cluster", "/etc/default/x"}) {
		t.Errorf("envFiles = %q", got)
	}
	exec := [][]any{{"/usr/bin/galera-supervisor", []string{"/usr/bin/galera-supervisor", "run", "--defaults-file=/x.cnf"},
		false, uint64(0), uint64(0), uint64(0), uint64(0), uint32(0), int32(0), int32(0)}}
	if got := execArgv(exec); !reflect.DeepEqual(got, [][]string{{"/usr/bin/galera-supervisor", "run", "--defaults-file=/x.cnf"}}) {
		t.Errorf("execArgv = %q", got)
	}
	if envFiles(nil) != nil || execArgv("junk") != nil {
		t.Error("unexpected shapes must decode to nothing")
	}
	if !usecTime(uint64(0)).IsZero() || !usecTime("x").IsZero() {
		t.Error("zero or foreign timestamps must be the zero time")
	}
	if got := usecTime(uint64(1_800_000_000_000_000)); !got.Equal(time.Unix(1_800_000_000, 0)) {
		t.Errorf("usecTime = %v", got)
	}
}

func TestJobError(t *testing.T) {
	err := fmt.Errorf("bootstrap: %w", &JobError{Op: "start", Unit: "mariadb.service", Result: "failed"})
	if !IsJobError(err) || IsJobError(errors.New("x")) {
		t.Error("IsJobError")
	}
	if want := `bootstrap: start mariadb.service: job ended "failed"`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
