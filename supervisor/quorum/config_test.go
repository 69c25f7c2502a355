package quorum

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

func lookup(m map[string]string) Lookup {
	return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
}

func TestConfigFrom(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("0123456789abcdef0123\n"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)

	c, err := ConfigFrom(lookup(map[string]string{"peer-address": "127.0.0.1:4601", "peers": "127.0.0.1:4601, 127.0.0.1:4602,127.0.0.1:4603",
		"peer-secret-file": secret, "bootstrap-wait": "20"}), lookup(nil), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:4601" || c.ID != "127.0.0.1:4601" || strings.Join(c.Peers, ",") != "127.0.0.1:4602,127.0.0.1:4603" ||
		c.BootstrapWait != 20*time.Second || !c.AutoBootstrap || string(c.Auth.Secret) != "0123456789abcdef0123" {
		t.Errorf("ConfigFrom = %+v", c)
	}

	// Defaults from the server options.
	c, err = ConfigFrom(lookup(map[string]string{"peer-secret-file": secret}),
		lookup(map[string]string{"wsrep-node-address": "10.0.0.1:4567", "wsrep-cluster-address": "gcomm://10.0.0.1,10.0.0.2:4567,[fd00::3]?pc.wait_prim=no"}), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "10.0.0.1:4569" || strings.Join(c.Peers, ",") != "10.0.0.2:4569,[fd00::3]:4569" || c.BootstrapWait != DefaultBootstrapWait {
		t.Errorf("defaults: %+v", c)
	}

	// No authentication: no coordination, and it says why.
	c, err = ConfigFrom(lookup(nil), lookup(map[string]string{"wsrep-cluster-address": "gcomm://a,b"}), lookup(nil))
	if err != nil || c.Enabled() || c.AutoBootstrap || !strings.Contains(c.Why, "no peer authentication") {
		t.Errorf("no auth: %+v, %v", c, err)
	}

	// peer-tls with the [sst] certificates, and the secret too.
	ca := testutil.MustCA(t, dir, "ca")
	cert, key := ca.MustIssue(t, dir, "node")
	c, err = ConfigFrom(lookup(map[string]string{"peers": "127.0.0.1:1", "peer-tls": "on", "peer-secret-file": secret}), lookup(nil),
		lookup(map[string]string{"tcert": cert, "tkey": key, "tca": filepath.Join(dir, "ca.pem")}))
	if err != nil || c.Auth.ServerTLS == nil || c.Auth.ClientTLS == nil || len(c.Auth.Secret) == 0 || !c.AutoBootstrap {
		t.Errorf("peer-tls: %+v, %v", c, err)
	}

	for name, tt := range map[string]struct {
		gs   map[string]string
		want string
	}{
		"bad address":         {map[string]string{"peer-address": "nope"}, "[galera-supervisor] peer-address=nope: want host:port"},
		"bad peer":            {map[string]string{"peers": "a:1,b"}, `peers=a:1,b: "b": want host:port`},
		"bad wait":            {map[string]string{"bootstrap-wait": "5 min"}, "bootstrap-wait=5 min: not a duration"},
		"auto without auth":   {map[string]string{"auto-bootstrap": "on"}, "auto-bootstrap=on: needs peer authentication"},
		"missing secret":      {map[string]string{"peer-secret-file": filepath.Join(dir, "none")}, "peer-secret-file=" + filepath.Join(dir, "none") + ": stat"},
		"world-readable":      {map[string]string{"peer-secret-file": open}, "readable by every user"},
		"short secret":        {map[string]string{"peer-secret-file": short}, "want at least 16"},
		"tls without a CA":    {map[string]string{"peer-tls": "on"}, "peer-tls=on: peer-tls needs a CA ([sst] tca)"},
		"bad auto-bootstrap":  {map[string]string{"auto-bootstrap": "maybe"}, "auto-bootstrap=maybe: want 0 or 1"},
		"secret and no peers": {map[string]string{"peer-secret-file": secret}, "[galera-supervisor] peers: no peer"},
	} {
		_, err := ConfigFrom(lookup(tt.gs), lookup(nil), lookup(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
}

// TestPCWeight: pc.weight is read from wsrep_provider_options as Galera
// takes it; unset or out of Galera's range is nil (1 when counted).
func TestPCWeight(t *testing.T) {
	for opts, want := range map[string]int{
		"gcache.size=1G;pc.weight=3":        3,
		"'pc.weight = 0; gmcast.segment=1'": 0,
		"gcache.size=1G":                    -1,
		"pc.weight=256":                     -1,
		"pc.weight=x":                       -1,
	} {
		got := -1
		if w := pcWeight(opts); w != nil {
			got = *w
		}
		if got != want {
			t.Errorf("pcWeight(%q) = %d, want %d", opts, got, want)
		}
	}
}
