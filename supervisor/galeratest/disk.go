package galeratest

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// FillDisk allocates, in a new file at path, all the space its filesystem
// has left, for a test of a disk that fills while an SST writes.
func FillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fill disk: %w", err)
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("fill disk: statfs %s: %w", path, err)
	}
	// Others write meanwhile: take what is left when the call runs.
	for size := int64(st.Bavail) * st.Bsize; size > 0; size -= 4 << 20 {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("fill disk: fallocate %s: %w", path, err)
		}
	}
	return nil
}
