package optionfile

import (
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"
)

// memFS is an in-memory fileSystem: file name to content. Directories are
// implied by the files in them; mode overrides a file's 0644.
type memFS struct {
	files map[string]string
	mode  map[string]fs.FileMode
	opens int // ReadFile calls
	limit int // > 0: files become unreadable after this many
}

type memInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

func (m *memFS) isDir(name string) bool {
	prefix := strings.TrimSuffix(name, "/") + "/"
	for f := range m.files {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

func (m *memFS) Stat(name string) (fs.FileInfo, error) {
	if data, ok := m.files[name]; ok {
		mode := fs.FileMode(0o644)
		if md, ok := m.mode[name]; ok {
			mode = md
		}
		return memInfo{path.Base(name), int64(len(data)), mode}, nil
	}
	if m.isDir(name) {
		return memInfo{path.Base(name), 0, fs.ModeDir | 0o755}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	m.opens++
	if m.limit > 0 && m.opens > m.limit {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	if data, ok := m.files[name]; ok {
		return []byte(data), nil
	}
	if m.isDir(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadDir(name string) ([]string, error) {
	if !m.isDir(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	prefix := strings.TrimSuffix(name, "/") + "/"
	seen := map[string]bool{}
	for f := range m.files {
		if rest, ok := strings.CutPrefix(f, prefix); ok {
			first, _, _ := strings.Cut(rest, "/")
			seen[first] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names))) // the reader must sort
	return names, nil
}
