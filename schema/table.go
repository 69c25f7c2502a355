package schema

// Who reads an option.
var (
	allSST       = []string{NativeCopy, NativeBackup, Mariabackup, Rsync}
	nativeAndMB  = []string{NativeCopy, NativeBackup, Mariabackup}
	mbOnly       = []string{Mariabackup}
	backupFamily = []string{NativeBackup, Mariabackup}
	nativeOnly   = Native
)

const (
	maxInt31   = 1<<31 - 1
	useTLS     = "native methods encrypt with TLS only: the encrypt=1 stream cipher is refused; use encrypt=3 (or 4 to require a CA) with tcert, tkey and tca, or ssl-mode with ssl-cert, ssl-key and ssl-ca"
	streamText = "native methods send their own checksummed stream over their own TCP connections; streamfmt and transferfmt configure the stock mariabackup script's mbstream/xbstream/tar and socat/nc"
	qpressText = "native-backup streams mariadb-backup's output without --compress (qpress); set compressor (lz4 is built in) to compress the stream"
)

// table is the schema: every option of [sst] the stock scripts and the
// MariaDB documentation name, the native methods' own, and every option
// of [galera-supervisor]. Options of [sst] read from the server groups too
// (tmpdir, ssl-*) are described as [sst] options.
var table = []Option{
	// Transport and stream.
	{Name: "streamfmt", Group: SST, Kind: Enum, Values: []string{"mbstream", "xbstream", "tar"}, Default: "mbstream", Methods: mbOnly, Handling: Ignored, Native: streamText,
		Doc: "stream format of the stock mariabackup SST"},
	{Name: "transferfmt", Group: SST, Kind: Enum, Values: []string{"socat", "nc"}, Default: "socat", Methods: mbOnly, Handling: Ignored, Native: streamText,
		Doc: "transfer tool of the stock mariabackup SST"},
	{Name: "sockopt", Group: SST, Kind: SocatOpts, Methods: nativeAndMB,
		Doc: "socat options of the data connections: nodelay, keepidle, keepintvl, keepcnt, sndbuf, rcvbuf apply; others are logged as ignored"},
	{Name: "compressor", Group: SST, Kind: Text, Methods: nativeAndMB,
		Doc: "donor's filter compressing the stream; a command naming lz4 uses the built-in codec"},
	{Name: "decompressor", Group: SST, Kind: Text, Methods: nativeAndMB,
		Doc: "joiner's filter decompressing the stream"},
	{Name: "rlimit", Group: SST, Kind: Rate, Min: 1, Max: 1 << 62, Methods: nativeAndMB,
		Doc: "donor's rate limit in bytes/s over all streams, pv -L syntax (100M); progress=none disables it, as stock"},
	{Name: "progress", Group: SST, Kind: Text, Methods: nativeAndMB, Handling: Mapped,
		Native: "native methods write pv's lines from their own progress events: progress=1 to the SST's stderr (the error log), progress=FILE appended to FILE or a FIFO, every 10 s and at the end; none also disables rlimit, as stock; the supervisor's status and journal get progress whatever it says",
		Doc:    "1 (pv's lines to stderr), none, or a file or FIFO for pv's lines"},
	{Name: "time", Group: SST, Kind: Bool, Default: "0", Methods: nativeAndMB, Handling: Mapped,
		Native: "native methods log each stage's duration always; time=1 adds stock's closing \"Total time on <role>: N seconds\" line",
		Doc:    "log how long each stage takes"},
	{Name: "transfer-streams", Group: SST, Kind: Int, Min: 1, Max: 64, Methods: nativeOnly, Handling: Own,
		Doc: "parallel TCP streams, each one disk request in flight on either side (default: native-copy 8, native-backup 4)"},
	{Name: "transfer-chunk-size", Group: SST, Kind: Size, Min: 4 << 10, Max: 8 << 20, Methods: nativeOnly, Handling: Own,
		Doc: "bytes per checksummed chunk (default: native-copy 4M, 2M with a compressor; native-backup 1M)"},
	{Name: "transfer-idle-timeout", Aliases: []string{"sst-idle-timeout"}, Group: SST, Kind: Duration, Min: 0, Max: maxInt31, Default: "120", Methods: nativeOnly, Handling: Own,
		Doc: "silence from a live SST's peer before it counts as gone (0 waits forever); sst-idle-timeout, Percona's name, is read too"},
	{Name: "transfer-sync", Group: SST, Kind: Bool, Default: "1", Methods: nativeOnly, Handling: Own,
		Doc: "0 skips the joiner's final syncfs"},
	{Name: "sst-initial-timeout", Group: SST, Kind: Duration, Min: 0, Max: maxInt31, Default: "300", Methods: nativeAndMB,
		Doc: "how long the joiner waits for the donor's first data (0 waits forever)"},
	{Name: "delta", Group: SST, Kind: Enum, Values: []string{"0", "1", "auto"}, Default: "auto", Methods: []string{NativeCopy}, Handling: Own,
		Doc: "native-copy's joiner sends a hash of each page of its old datadir (blocks of the donor's innodb_page_size) and receives only the pages that differ (\"delta: X of Y differ\" in both logs); auto: when that datadir is of the donor's cluster (the gcache's GID) and no stock SST left it half written (sst_in_progress, or the supervisor's galera-supervisor.sst-incomplete naming a stock method), else a full transfer, the log says why; 1 always; 0 never. Nothing is copied: the old files are hashed where they are, staging holds only the pages that differ and new files, and the swap writes those pages into the old files in place after saving what they overwrite in an undo journal (.sst-native-undo), so a failed or interrupted swap puts the old datadir back; extra disk use is about twice the changed pages"},

	// Encryption.
	{Name: "encrypt", Group: SST, Kind: Int, Min: 0, Max: 4, Default: "0", Methods: nativeAndMB, Handling: Refused, RefusedValues: []string{"1"}, Native: useTLS,
		Doc: "0 none, 1 stream cipher, 2 TLS with tcert+tca, 3 TLS with tcert+tkey, 4 like 3 with a mandatory CA"},
	{Name: "encrypt-algo", Group: SST, Kind: Text, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "cipher of encrypt=1"},
	{Name: "encrypt-format", Group: SST, Kind: Enum, Values: []string{"openssl", "xbcrypt"}, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "tool of encrypt=1"},
	{Name: "encrypt-key", Group: SST, Kind: Text, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "key of encrypt=1"},
	{Name: "encrypt-key-file", Group: SST, Kind: Path, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "key file of encrypt=1"},
	{Name: "encrypt-threads", Group: SST, Kind: Int, Min: 1, Max: 1 << 16, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "threads of encrypt=1"},
	{Name: "encrypt-chunk-size", Group: SST, Kind: Size, Min: 1, Max: 1 << 40, Methods: mbOnly, Handling: Ignored, Native: useTLS, Doc: "chunk size of encrypt=1"},
	{Name: "ssl-mode", Group: SST, Kind: Enum, Values: []string{"DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"}, Default: "DISABLED", Methods: allSST,
		Doc: "TLS of the SST; REQUIRED and VERIFY_* refuse to fall back to cleartext"},
	{Name: "tcert", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS certificate, PEM (wins over ssl-cert)"},
	{Name: "tkey", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS private key (wins over ssl-key)"},
	{Name: "tca", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS CA certificate (wins over ssl-ca)"},
	{Name: "tcapath", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS CA directory"},
	{Name: "ssl-cert", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS certificate, also read from the server groups"},
	{Name: "ssl-key", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS private key, also read from the server groups"},
	{Name: "ssl-ca", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS CA certificate, also read from the server groups"},
	{Name: "ssl-capath", Group: SST, Kind: Path, Methods: allSST, Doc: "TLS CA directory, also read from the server groups"},
	{Name: "ssl-server-cert", Group: SST, Kind: Path, Methods: allSST, Doc: "the joiner's certificate, over ssl-cert"},
	{Name: "ssl-server-key", Group: SST, Kind: Path, Methods: allSST, Doc: "the joiner's key, over ssl-key"},
	{Name: "ssl-server-ca", Group: SST, Kind: Path, Methods: allSST, Doc: "the joiner's CA, over ssl-ca"},
	{Name: "ssl-server-capath", Group: SST, Kind: Path, Methods: allSST, Doc: "the joiner's CA directory, over ssl-capath"},
	{Name: "ssl-client-cert", Group: SST, Kind: Path, Methods: allSST, Doc: "the donor's certificate, over ssl-cert"},
	{Name: "ssl-client-key", Group: SST, Kind: Path, Methods: allSST, Doc: "the donor's key, over ssl-key"},
	{Name: "ssl-client-ca", Group: SST, Kind: Path, Methods: allSST, Doc: "the donor's CA, over ssl-ca"},
	{Name: "ssl-client-capath", Group: SST, Kind: Path, Methods: allSST, Doc: "the donor's CA directory, over ssl-capath"},
	{Name: "ssl", Group: SST, Kind: Bool, Methods: nil, Handling: Ignored,
		Native: "no SST script reads it; set ssl-mode (or encrypt) to use TLS", Doc: "server option, not an SST one"},
	{Name: "ssl-cipher", Group: SST, Kind: CipherList, Methods: nativeAndMB, Handling: Mapped,
		Native: "native methods offer the TLS 1.2 suites it names in OpenSSL's words (ECDHE-RSA-AES256-GCM-SHA384...), in its order, and log the entries they cannot use (keywords such as HIGH, !aNULL); TLS 1.3 is negotiated whatever it says, as with OpenSSL",
		Doc:    "TLS cipher list, OpenSSL names; also read from the server groups"},
	{Name: "ssl-crl", Group: SST, Kind: Path, Methods: nativeAndMB, Handling: Mapped,
		Native: "native methods refuse a peer certificate the revocation list (PEM or DER) names; the list must be signed by the CA", Doc: "TLS certificate revocation list; also read from the server groups"},
	{Name: "ssl-crlpath", Group: SST, Kind: Path, Methods: nativeAndMB, Handling: Mapped,
		Native: "native methods read every revocation list in the directory, as ssl-crl", Doc: "directory of TLS revocation lists; also read from the server groups"},
	{Name: "ssl-dhparams", Group: SST, Kind: Path, Methods: mbOnly, Handling: Ignored,
		Native: "native methods negotiate ECDHE key exchange, which needs no Diffie-Hellman parameters", Doc: "Diffie-Hellman parameters for encrypt >= 2"},

	// What is copied.
	{Name: "cpat", Group: SST, Kind: Text, Methods: nativeAndMB, Doc: "regular expression of the paths the joiner keeps when it cleans its datadir"},
	{Name: "sst-special-dirs", Group: SST, Kind: Bool, Default: "1", Methods: nativeAndMB, Handling: Refused, RefusedValues: []string{"0", "off", "no", "false"},
		Native: "native methods always copy the InnoDB and Aria directories outside the datadir (sst-special-dirs=1, stock's default); 0 is not supported",
		Doc:    "copy InnoDB and Aria directories that are outside the datadir"},
	{Name: "sst-max-binlogs", Group: SST, Kind: Int, Min: -maxInt31, Max: maxInt31, Default: "1", Methods: []string{NativeCopy, Rsync}, Doc: "binlogs the donor sends (<= 0: all)"},
	{Name: "use-extra", Group: SST, Kind: Bool, Default: "0", Methods: backupFamily, Doc: "mariadb-backup connects over extra-port"},
	{Name: "inno-backup-opts", Group: SST, Kind: Text, Methods: backupFamily, Doc: "extra mariadb-backup --backup arguments"},
	{Name: "inno-apply-opts", Group: SST, Kind: Text, Methods: backupFamily, Doc: "extra mariadb-backup --prepare arguments"},
	{Name: "inno-move-opts", Group: SST, Kind: Text, Methods: mbOnly, Handling: Ignored,
		Native: "native-backup prepares in a staging directory and swaps it in; there is no mariadb-backup --move-back to pass options to", Doc: "extra mariadb-backup --move-back arguments"},
	{Name: "mariadb-backup", Group: SST, Kind: Path, Methods: []string{NativeBackup}, Handling: Own,
		Doc: "the mariadb-backup binary this node runs (default: mariadb-backup, else mariabackup, from PATH)"},
	{Name: "prepare-mariadb-backup", Group: SST, Kind: Path, Methods: []string{NativeBackup}, Handling: Own,
		Doc: "joiner: the mariadb-backup binary that prepares a donor's backup when this node's own cannot, across the redo-format changes of 10.5 and 10.8 (MDEV-27437): one of the donor's major version"},
	{Name: "use-memory", Group: SST, Kind: Size, Min: 1 << 20, Max: 1 << 50, Methods: backupFamily, Doc: "mariadb-backup --use-memory of --prepare (default innodb_buffer_pool_size)"},
	{Name: "compress", Group: SST, Kind: Text, Methods: mbOnly, Handling: Ignored, Native: qpressText, Doc: "mariadb-backup --compress (qpress)"},
	{Name: "compress-threads", Group: SST, Kind: Int, Min: 1, Max: 1 << 16, Methods: mbOnly, Handling: Ignored, Native: qpressText, Doc: "mariadb-backup --compress-threads"},
	{Name: "compress-chunk-size", Group: SST, Kind: Size, Min: 1, Max: 1 << 40, Methods: mbOnly, Handling: Ignored, Native: qpressText, Doc: "mariadb-backup --compress-chunk-size"},
	{Name: "backup-threads", Group: SST, Kind: Int, Min: 1, Max: 1 << 16, Methods: []string{NativeBackup, Mariabackup, Rsync}, Doc: "parallel copy threads (mariadb-backup --parallel, rsync workers); also read from the server groups"},
	{Name: "tmpdir", Group: SST, Kind: Path, Written: true, Methods: []string{NativeBackup, Mariabackup, Rsync}, Doc: "donor's working directory; also read from the server groups"},
	{Name: "wsrep-sst-auth", Group: SST, Kind: Text, Methods: backupFamily, Doc: "user:password for the donor's backup, when the server passes none"},

	// Logs.
	{Name: "sst-syslog", Group: SST, Kind: Int, Min: -1, Max: 1, Default: "0", Methods: nativeAndMB, Doc: "1 logs to syslog instead of the log files, -1 never; 0 follows [mysqld_safe] syslog"},
	{Name: "sst-syslog-socket", Group: SST, Kind: Path, Written: true, Default: "/dev/log", Methods: nativeOnly, Handling: Own, Doc: "the syslog daemon's socket for sst-syslog"},
	{Name: "sst-log-archive", Group: SST, Kind: Bool, Default: "1", Methods: nativeAndMB, Doc: "archive the previous SST's logs before a new SST"},
	{Name: "sst-log-archive-dir", Group: SST, Kind: Path, Written: true, Default: "/tmp/sst_log_archive", Methods: nativeAndMB, Doc: "directory of the archived SST logs"},
	{Name: "sst-log-archive-keep", Group: SST, Kind: Int, Min: 0, Max: maxInt31, Default: "10", Methods: nativeOnly, Handling: Own, Doc: "archived copies kept of each SST log (0 no limit)"},
	{Name: "sst-log-archive-max-age", Group: SST, Kind: Duration, Unit: Day, Min: 0, Max: 36500 * 86400, Default: "30", Methods: nativeOnly, Handling: Own,
		Doc: "archived SST logs older than this are removed: days, or 12h, 90m (0 no limit)"},

	// [galera-supervisor]
	{Name: "peer-address", Group: Supervisor, Kind: HostPort, Handling: Own, Doc: "host:port the supervisor listens on for its peers (default wsrep_node_address's host, port 4569)"},
	{Name: "peers", Group: Supervisor, Kind: HostPorts, Handling: Own, Doc: "the other supervisors, host:port,... (default wsrep_cluster_address's hosts at port 4569)"},
	{Name: "peer-secret-file", Group: Supervisor, Kind: Path, Handling: Own, Doc: "file of the peers' shared secret, at least 16 bytes, not readable by others"},
	{Name: "peer-tls", Group: Supervisor, Kind: Bool, Default: "0", Handling: Own, Doc: "peers authenticate by TLS with the [sst] certificates"},
	{Name: "bootstrap-wait", Group: Supervisor, Kind: Duration, Min: 0, Max: maxInt31, Default: "300", Handling: Own, Doc: "how long to wait for every peer before a majority bootstraps"},
	{Name: "auto-bootstrap", Group: Supervisor, Kind: Bool, Handling: Own, Doc: "bootstrap a new Primary Component by the peers' decision (default on with peer authentication)"},
	{Name: "user", Group: Supervisor, Kind: Text, Handling: Own, Doc: "the health check's user (over [client])"},
	{Name: "password", Group: Supervisor, Kind: Text, Handling: Own, Doc: "the health check's password (over [client])"},
	{Name: "http-address", Group: Supervisor, Kind: HostPort, Handling: Own, Doc: "host:port of the health endpoint and metrics (:9200 every address); unset, none"},
	{Name: "available-when-donor", Group: Supervisor, Kind: Bool, Default: "0", Handling: Own, Doc: "the endpoint's / answers 200 for a Donor/Desynced node, as clustercheck's available_when_donor"},
	{Name: "available-when-readonly", Group: Supervisor, Kind: Bool, Default: "1", Handling: Own, Doc: "0: the endpoint's / answers 503 for a read_only node, as clustercheck's available_when_readonly"},
	{Name: "http-tls", Group: Supervisor, Kind: Bool, Default: "0", Handling: Own, Doc: "the endpoint serves HTTPS with the [sst] tcert and tkey"},
	{Name: "http-verify-client", Group: Supervisor, Kind: Bool, Default: "0", Handling: Own, Doc: "with http-tls, the endpoint's clients need a certificate the [sst] tca signed"},
}
