package sst

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// IncompleteFile marks, in the datadir, a node whose last SST as a joiner
// did not complete: its supervisor writes it when one begins (IncompleteWhy)
// and removes it once the node is Synced. Nothing sends it; a swap never
// replaces it (ownFile).
const IncompleteFile = "galera-supervisor.sst-incomplete"

// IncompleteWhy is the marker's text for an SST by method that began at.
func IncompleteWhy(method string, at time.Time) string {
	if method == "" {
		method = "an unknown method"
	}
	return "an SST by " + method + " into this node began at " + at.UTC().Format(time.RFC3339) + " and the node was not Synced since"
}

var incompleteBy = regexp.MustCompile(`^an SST by (\S+) into this node began`)

// HalfWritten says whether the incomplete SST that the marker's text why
// tells of may have left the datadir half written: any but a native
// method's, which stage and swap and leave the old datadir whole (see
// Staging), or one whose method the text does not name.
func HalfWritten(why string) bool {
	m := incompleteBy.FindStringSubmatch(strings.TrimSpace(why))
	return m == nil || !slices.Contains(schema.Native, m[1])
}

// incompleteBefore says why the joiner's datadir may be half written by an
// SST that did not finish, "" when nothing says so: a stock script's
// sst_in_progress, or the supervisor's marker naming a stock method (the
// supervisor removes sst_in_progress before it starts mariadbd again).
func incompleteBefore(datadir string) string {
	if _, err := os.Lstat(filepath.Join(datadir, InProgressFile)); err == nil {
		return InProgressFile + " left in the datadir by an SST that did not finish"
	}
	b, err := os.ReadFile(filepath.Join(datadir, IncompleteFile))
	if err != nil {
		return ""
	}
	why := strings.TrimSpace(string(b))
	if !HalfWritten(why) {
		return ""
	}
	return fmt.Sprintf("%s says %s", IncompleteFile, why)
}
