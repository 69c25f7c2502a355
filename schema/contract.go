package schema

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// EnvOptions names, in mariadbd's environment and so in the SST's, the
// supervisor's snapshot of its last good option files ([sst] and the server
// groups). The SST reads its options from there rather than from the files,
// which may hold an edit the supervisor refused.
const EnvOptions = "GALERA_SUPERVISOR_OPTIONS"

// SnapshotGroups are the groups a snapshot holds: those the SST methods
// read. [client] and its passwords stay out.
func SnapshotGroups() []string {
	return append([]string{string(SST)}, optionfile.ServerGroups("")...)
}

func checkHostPort(v string) error {
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

func parseHostPorts(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := checkHostPort(p); err != nil {
			return nil, fmt.Errorf("%q: %v", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}
