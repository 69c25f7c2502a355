package nativebackup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/mbstream"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

const testState = "6b0a6a7e-e59c-11f1-8132-de8897820a49:42 0"

// hashTree digests every file under dir but those skip names (by path
// relative to dir): what the joiner leaves in place by design.
func hashTree(t *testing.T, dir string, skip func(rel string) bool) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || skip(rel) {
			return nil
		}
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %d %s", rel, n, hex.EncodeToString(h.Sum(nil))))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// skipLogs leaves out the logs, which the joiner writes beside the old data.
func skipLogs(rel string) bool { return strings.HasSuffix(rel, ".log") }

func oldDatadir(t *testing.T) string {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ibdata1":      "old system tablespace",
		"db/t.ibd":     "old table",
		"grastate.dat": "# GALERA saved state\nversion: 2.1\nuuid: x\nseqno: -1\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// joinerRun is a Joiner running in the background on a loopback port.
type joinerRun struct {
	out    *io.PipeReader
	lines  chan string
	err    chan error
	addr   transfer.Address
	secret string
}

func startJoiner(t *testing.T, ctx context.Context, datadir string) *joinerRun {
	t.Helper()
	pr, pw := io.Pipe()
	s := &sst.Session{
		Method:   Name,
		Args:     &sst.Args{Role: sst.Joiner, Address: "127.0.0.1:0", Datadir: datadir},
		Options:  sst.MapOptions{},
		Proto:    sst.NewProtocol(pw, sst.Joiner, false),
		Log:      logtest.New(t),
		Progress: progress.Discard,
		Datadir:  datadir,
	}
	j := &joinerRun{out: pr, lines: make(chan string, 8), err: make(chan error, 1)}
	go func() {
		err := Method{}.Joiner(ctx, s)
		pw.Close()
		j.err <- err
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			j.lines <- sc.Text()
		}
		close(j.lines)
	}()
	select {
	case l := <-j.lines:
		addr, ok := strings.CutPrefix(l, "ready ")
		if !ok {
			t.Fatalf("first line %q", l)
		}
		a, secret, err := parseAddress(addr)
		if err != nil {
			t.Fatal(err)
		}
		j.addr, j.secret = a, secret
	case err := <-j.err:
		t.Fatalf("joiner failed before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no ready line")
	}
	return j
}

func (j *joinerRun) wait(t *testing.T) ([]string, error) {
	t.Helper()
	var err error
	select {
	case err = <-j.err:
	case <-time.After(60 * time.Second):
		t.Fatal("joiner did not finish")
	}
	var lines []string
	for l := range j.lines {
		lines = append(lines, l)
	}
	return lines, err
}

func dialJoiner(t *testing.T, ctx context.Context, j *joinerRun) *transfer.Session {
	t.Helper()
	sess, err := transfer.Dial(ctx, j.addr, j.secret, transfer.Options{Streams: 2})
	if err != nil {
		t.Fatalf("dial joiner: %v", err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// backupStream is a small mbstream shaped like mariadb-backup's.
func backupStream(t *testing.T, checkpoints bool) []byte {
	var buf bytes.Buffer
	w := mbstream.NewWriter(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteFileChunks("ibdata1", bytes.NewReader(bytes.Repeat([]byte("s"), 300000)), 65536))
	must(w.WriteFileChunks("db/t.ibd", bytes.NewReader(bytes.Repeat([]byte("t"), 200000)), 65536))
	if checkpoints {
		must(w.Bytes("xtrabackup_checkpoints", []byte("backup_type = full-backuped\n")))
	}
	must(w.Bytes("donor_galera_info", []byte(testState+"\n")))
	return buf.Bytes()
}

func TestJoinerIST(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := oldDatadir(t)
	before := hashTree(t, dir, skipLogs)
	j := startJoiner(t, ctx, dir)
	sess := dialJoiner(t, ctx, j)
	if err := sess.Send(msgState, stateMsg{State: testState, IST: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sess.Expect(ctx, msgReceived, nil); err != nil {
		t.Fatal(err)
	}
	sess.Close()
	lines, err := j.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || lines[0] != testState {
		t.Fatalf("stdout after ready: %q", lines)
	}
	if after := hashTree(t, dir, skipLogs); after != before {
		t.Fatalf("IST touched the datadir:\n%s\n---\n%s", before, after)
	}
}

// Every bad input leaves the old datadir as it was, prints no
// coordinates, and names the cause.
func TestJoinerBadInput(t *testing.T) {
	good := backupStream(t, true)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/3] ^= 0x40 // inside ibdata1's payload
	cases := []struct {
		name string
		// donor plays the donor's part on sess.
		donor func(ctx context.Context, sess *transfer.Session) error
		want  string
		flip  string // readback.FlipEnv: a file changed on disk after it was written
	}{
		{"corrupted stream", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState, Total: int64(len(corrupt))})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(corrupt)); err != nil {
				return err
			}
			_, err := sess.Finish(ctx)
			return err
		}, "checksum mismatch", ""},
		{"donor error (wrong credentials)", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(good[:len(good)/2])); err != nil {
				return err
			}
			sess.Abort(errors.New("native-backup: mariadb-backup --backup failed (exit status 1): Failed to connect to MariaDB server: Access denied for user 'sst'@'localhost' (using password: YES)"))
			return nil
		}, "Access denied for user 'sst'@'localhost'", ""},
		// A donor that ends the stream and only then fails, with the
		// joiner's extraction failing first: the reason still wins.
		{"donor error after a short stream", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(good[:len(good)/2])); err != nil {
				return err
			}
			if _, err := sess.Sync(ctx); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond) // the joiner's extraction hits the short end
			sess.Abort(errors.New("native-backup: mariadb-backup --backup failed (exit status 1): Access denied for user 'sst'@'localhost'"))
			return nil
		}, "Access denied for user 'sst'@'localhost'", ""},
		{"donor gone mid-stream", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(good[:len(good)/2])); err != nil {
				return err
			}
			return sess.Close()
		}, "", ""},
		{"not a backup", func(ctx context.Context, sess *transfer.Session) error {
			s := backupStream(t, false)
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(s)); err != nil {
				return err
			}
			_, err := sess.Finish(ctx)
			return err
		}, "no xtrabackup_checkpoints", ""},
		{"path escape", func(ctx context.Context, sess *transfer.Session) error {
			var buf bytes.Buffer
			buf.Write(good)
			b := []byte(mbstream.Magic + "\x00E\x09\x00\x00\x00../escape")
			buf.Write(b)
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, &buf); err != nil {
				return err
			}
			_, err := sess.Finish(ctx)
			return err
		}, "starts with '.'", ""},
		{"disk too small", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState, Total: 1 << 60})
			_, err := sess.Recv(ctx)
			return err
		}, "space", ""},
		// The extractor wrote db/t.ibd and checked each payload against
		// its CRC; then the disk changed a byte of it. The read-back
		// before prepare finds it.
		{"content changed on disk", func(ctx context.Context, sess *transfer.Session) error {
			sess.Send(msgState, stateMsg{State: testState})
			if _, err := sess.SendStream(ctx, streamID, bytes.NewReader(good)); err != nil {
				return err
			}
			_, err := sess.Finish(ctx)
			return err
		}, "db/t.ibd: read back from ", "db/t.ibd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.flip != "" {
				t.Setenv(readback.FlipEnv, tc.flip)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := oldDatadir(t)
			before := hashTree(t, dir, skipLogs)
			j := startJoiner(t, ctx, dir)
			sess := dialJoiner(t, ctx, j)
			derr := tc.donor(ctx, sess)
			lines, err := j.wait(t)
			if err == nil {
				t.Fatalf("joiner succeeded (donor: %v), printed %q", derr, lines)
			}
			t.Logf("joiner: %v (exit %d); donor: %v", err, sst.ExitCode(err), derr)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if sst.ExitCode(err) == 0 {
				t.Errorf("exit code 0 for %v", err)
			}
			if where := filepath.Join(dir, sst.StagingDirName, tc.flip); tc.flip != "" && (!strings.Contains(err.Error(), where) || sst.ExitCode(err) != int(syscall.EIO)) {
				t.Errorf("error %q (exit %d) does not name %s with EIO", err, sst.ExitCode(err), where)
			}
			if len(lines) != 0 {
				t.Errorf("printed %q after a failure", lines)
			}
			if after := hashTree(t, dir, skipLogs); after != before {
				t.Errorf("datadir changed:\n%s\n---\n%s", before, after)
			}
			if _, err := os.Stat(filepath.Join(dir, sst.StagingDirName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("staging left behind: %v", err)
			}
		})
	}
}

func TestReadCoordinates(t *testing.T) {
	files := map[string]string{"xtrabackup_galera_info": testState + "\n"}
	read := func(n string) ([]byte, error) {
		if v, ok := files[n]; ok {
			return []byte(v), nil
		}
		return nil, fmt.Errorf("open %s: %w", n, fs.ErrNotExist)
	}
	st, err := readCoordinates(read)
	if err != nil || st.String() != testState {
		t.Fatalf("fallback: %v %v", st, err)
	}
	files["donor_galera_info"] = "6b0a6a7e-e59c-11f1-8132-de8897820a49:43 1\nignored\n"
	if st, err = readCoordinates(read); err != nil || st.Seqno != 43 || st.Domain != "1" {
		t.Fatalf("donor_galera_info first: %v %v", st, err)
	}
	delete(files, "donor_galera_info")
	files["xtrabackup_galera_info"] = "garbage"
	if _, err := readCoordinates(read); !errors.Is(err, errNoCoordinates) {
		t.Fatalf("garbage: %v", err)
	}
}
