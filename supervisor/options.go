package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/schema"
)

// Defaults are the --defaults-* arguments mariadbd reads its option files
// with. They go first on mariadbd's command line, as it requires.
type Defaults struct {
	File        string // --defaults-file
	ExtraFile   string // --defaults-extra-file
	GroupSuffix string // --defaults-group-suffix
	NoDefaults  bool   // --no-defaults
}

// Args returns the arguments in the order mariadbd accepts them.
func (d Defaults) Args() []string {
	var a []string
	if d.NoDefaults {
		a = append(a, "--no-defaults")
	}
	if d.File != "" {
		a = append(a, "--defaults-file="+d.File)
	}
	if d.ExtraFile != "" {
		a = append(a, "--defaults-extra-file="+d.ExtraFile)
	}
	if d.GroupSuffix != "" {
		a = append(a, "--defaults-group-suffix="+d.GroupSuffix)
	}
	return a
}

// Sources are the option files d names, for package optionfile.
func (d Defaults) Sources() (optionfile.Sources, error) {
	src, rest, err := optionfile.ParseArgs(d.Args())
	if err != nil {
		return src, err
	}
	if len(rest) > 0 {
		return src, fmt.Errorf("option files: unexpected %q", rest[0])
	}
	return src, nil
}

// Options is what the option files say, each map keyed by the normalised
// option name ("wsrep-on" for wsrep_on, loose-wsrep-on...), last value wins.
type Options struct {
	// Server holds the server groups: [mysqld], [server], [mariadb],
	// [galera], [mysqld-10.11], ... and their --defaults-group-suffix forms.
	Server map[string]string
	// Client holds [client], [client-server], [client-mariadb], then
	// [galera-supervisor], which wins: the health check's credentials.
	Client map[string]string
	// Supervisor is [galera-supervisor] alone (peer coordination), SST
	// the [sst] group (its certificates serve peer-tls).
	Supervisor, SST map[string]string
	// Files is what the maps were read from, with each option's file and
	// line; nil from a loader of tests that does not read files.
	Files *optionfile.Set
}

// Datadir is the server's datadir option, mariadbd's default when unset.
func (o Options) Datadir() string {
	if v, _ := o.Get("datadir"); v != "" {
		return v
	}
	return "/var/lib/mysql"
}

// Key normalises an option name the way mariadbd compares them.
func Key(name string) string { return optionfile.Key(name) }

// Get returns a server option's value.
func (o Options) Get(name string) (string, bool) {
	v, ok := o.Server[Key(name)]
	return v, ok
}

// Bool reads a boolean server option, with def when it is absent.
func (o Options) Bool(name string, def bool) bool {
	if _, ok := o.Server["skip-"+Key(name)]; ok {
		return false
	}
	v, ok := o.Get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "", "1", "on", "true", "yes":
		return true
	}
	return false
}

// AddArgs folds "--name[=value]" arguments into m, as mariadbd would see
// them after the option files; other arguments are ignored.
func AddArgs(m map[string]string, args []string) {
	for _, a := range args {
		rest, ok := strings.CutPrefix(a, "--")
		if !ok || rest == "" {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		m[Key(k)] = v
	}
}

// ClientGroups are the groups the health check's credentials come from;
// [galera-supervisor] is last so that it wins.
var ClientGroups = []string{"client", "client-server", "client-mariadb", "galera-supervisor"}

// LoadOptionFiles returns a loader that reads Options with package
// optionfile, as mariadbd reads them. Warnings (a broken included file, a
// world-writable file skipped) go to log.
func LoadOptionFiles(d Defaults, log *slog.Logger) func(context.Context) (Options, error) {
	return func(ctx context.Context) (Options, error) {
		src, err := d.Sources()
		if err != nil {
			return Options{}, err
		}
		set, err := optionfile.Load(src)
		if err != nil {
			return Options{}, err
		}
		for _, w := range set.Warnings() {
			logging.OrDiscard(log).Warn("option files", slog.Any("error", w))
		}
		toMap := func(bare string, opts []optionfile.Option) map[string]string {
			m := map[string]string{}
			for _, o := range opts {
				m[o.Key()] = o.Value
				if !o.HasValue {
					m[o.Key()] = bare
				}
			}
			return m
		}
		// The schema's groups read a bare option as =1, as the SST does.
		return Options{
			Server:     toMap("", set.Options(optionfile.ServerGroups("")...)),
			Client:     toMap("", set.Options(ClientGroups...)),
			Supervisor: toMap("1", set.Options(string(schema.Supervisor))),
			SST:        toMap("1", set.Options(string(schema.SST))),
			Files:      set,
		}, nil
	}
}
