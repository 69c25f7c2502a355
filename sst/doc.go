// Package sst is the contract between mariadbd and an SST method, and the
// joiner's safe handling of a received snapshot. The methods (native-copy,
// native-backup) live in sub-packages and use what is here:
//
//   - Run is the whole life of one SST process: it parses the server's
//     argv (ParseArgs; unknown flags ignored, --mysqld-args is the rest),
//     reads the environment (credentials only from WSREP_SST_OPT_AUTH),
//     holds <datadir>/wsrep_sst.pid so that two SSTs never run at once
//     (EALREADY after 30s), marks the joiner with sst_in_progress, watches
//     the joiner's --parent, and calls the registered Method's Joiner or
//     Donor with a Session. A method registers once with Register.
//   - Session.Proto (Protocol) writes the only lines stdout may carry, in
//     the order the server needs: a joiner's "ready" first and its
//     "<uuid>:<seqno> <domain>" last; a donor's "flush tables", "continue"
//     and "done"; "total"/"complete" only with --progress 1. Logs go to
//     Session.Log: on stderr, "WSREP_SST: [INFO] ..." (notify/logging),
//     or native journal entries when stderr is the journal, and into
//     <datadir>/<method>.<role>.log (LogName), or to syslog instead
//     ([sst] sst-syslog). Before each SST the previous logs are archived
//     and the archive pruned (Archive); a method's tools log through
//     Session.OpenToolLog.
//   - Errors carry the errno the process exits with (Error, Errorf,
//     ExitCode): the server reports it to Galera negated.
//   - Staging receives a snapshot in <root>/.sst-native without touching
//     the root, checks free space first (CheckSpace), verifies what arrived
//     against the donor's manifest (Verify), and Swap replaces the root's
//     contents all or nothing: previous entries move aside (the cpat ones
//     stay), new ones move in, everything is fsync'd, and only then is the
//     previous data deleted. A failed swap is rolled back at once; a crash
//     mid-swap is rolled back by the next NewStaging or Recover, from a
//     journal. The old datadir is therefore never lost before the new one
//     is complete and verified.
package sst
