// Package logtest gives tests a *slog.Logger that writes to t.Log, and one
// that records what was logged.
package logtest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// New returns a logger writing each record, as the Text handler writes
// it, to t.Log.
func New(t testing.TB) *slog.Logger {
	return slog.New(logging.NewText(tbWriter{t}, logging.TextOptions{}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Recorder is a slog.Handler keeping every record, with the attributes
// added by With folded in, for tests that check what was logged.
type Recorder struct {
	mu      *sync.Mutex
	records *[]Record
	attrs   []slog.Attr
	text    slog.Handler // renders Line into buf
	buf     *bytes.Buffer
}

// Record is one logged record.
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string // key (groups joined by ".") → value
	// Line is the record as the Text handler writes it, without prefix
	// and level: "message key=value ...".
	Line string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	buf := new(bytes.Buffer)
	return &Recorder{mu: new(sync.Mutex), records: new([]Record), buf: buf, text: logging.NewText(buf, logging.TextOptions{Level: slog.LevelDebug})}
}

// Logger is a logger over r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Records returns what was logged so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), *r.records...)
}

// Lines returns the records logged so far as the Text handler writes them.
func (r *Recorder) Lines() []string {
	var out []string
	for _, rec := range r.Records() {
		out = append(out, rec.Line)
	}
	return out
}

// Messages returns the messages logged so far.
func (r *Recorder) Messages() []string {
	var out []string
	for _, rec := range r.Records() {
		out = append(out, rec.Message)
	}
	return out
}

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	c.text = r.text.WithAttrs(as)
	return &c
}

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(name string) slog.Handler {
	if name == "" {
		return r
	}
	c := *r
	c.attrs = []slog.Attr{{Key: name, Value: slog.GroupValue(r.attrs...)}}
	c.text = r.text.WithGroup(name)
	return &c
}

// Handle implements slog.Handler.
func (r *Recorder) Handle(ctx context.Context, rec slog.Record) error {
	out := Record{Level: rec.Level, Message: rec.Message, Attrs: map[string]string{}}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			for _, m := range a.Value.Group() {
				add(prefix+a.Key+".", m)
			}
			return
		}
		out.Attrs[prefix+a.Key] = a.Value.String()
	}
	for _, a := range r.attrs {
		add("", a)
	}
	rec.Attrs(func(a slog.Attr) bool { add("", a); return true })
	// At Info, so that the line carries no level label.
	plain := slog.NewRecord(rec.Time, slog.LevelInfo, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool { plain.AddAttrs(a); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Reset()
	r.text.Handle(ctx, plain)
	out.Line = strings.TrimSuffix(r.buf.String(), "\n")
	*r.records = append(*r.records, out)
	return nil
}
