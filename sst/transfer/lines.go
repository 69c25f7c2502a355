package transfer

import (
	"fmt"
	"io"
	"sync"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// ServerLines is a Reporter printing the server's progress lines on w:
// "total <N>" when the total changes and "complete <N>" as bytes move.
// w must serialise with the method's other stdout writes (it is written
// with one Write call per line).
func ServerLines(w io.Writer) progress.Reporter {
	var mu sync.Mutex
	var total, done int64 = -1, -1
	return progress.Func(func(e progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Total > 0 && e.Total != total {
			total = e.Total
			fmt.Fprintf(w, "total %d\n", total)
		}
		if e.Done != done && e.Done >= 0 {
			done = e.Done
			fmt.Fprintf(w, "complete %d\n", done)
		}
	})
}
