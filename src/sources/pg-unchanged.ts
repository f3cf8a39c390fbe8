// An unchanged PostgreSQL database is not dumped again: the last dump stays in the artifact's mirror (kept-dump.ts),
// and a run that finds the cluster exactly where that dump found it links it into the new snapshot. "Exactly where"
// is the cluster's state, read just before pg_dump would start, in the same session:
//   - system identifier and postmaster start time: the same server, not restarted, restored or replaced;
//   - the WAL insert position: every logged change to any database of the cluster (rows, catalog, roles) moves it;
//   - the transaction snapshot (xmin:xmax:running xids): a commit whose WAL record is written becomes visible only
//     when it leaves the running list (with synchronous replication that can be much later), and that writes no WAL;
//   - a digest of the database's sequences: nextval() within an already logged range writes no WAL;
//   - none at all (always dump) on a standby, or when the database has unlogged tables (their rows write no WAL).
// The state is read before the dump's own snapshot is taken, so a change in between only causes a new dump.
import { POSITIONAL_ARGV } from '../remote/batch';
import { newMarker, reportStateLines } from './kept-dump';

export const PG_STATE_SQL = [
  'SELECT CASE WHEN pg_catalog.pg_is_in_recovery()',
  "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relpersistence = 'u') THEN ''",
  "ELSE (SELECT system_identifier::text FROM pg_catalog.pg_control_system())",
  "  || ':' || extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text",
  "  || ':' || pg_catalog.pg_current_wal_insert_lsn()::text",
  "  || ':' || pg_catalog.txid_current_snapshot()::text",
  // sha256, not md5: md5() fails on a FIPS build (which would only mean a dump every time).
  "  || ':' || coalesce((SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(",
  "       pg_catalog.format('%I.%I=%s', schemaname, sequencename, coalesce(last_value::text, '-')), ','",
  "       ORDER BY schemaname, sequencename), 'UTF8')), 'hex') FROM pg_catalog.pg_sequences), '')",
  'END',
].join('\n');

// $1 = marker, $2 = the state the kept dump was taken at ('' for none), $3 = n, then the state query's argv (n words)
// and pg_dump's. Prints `<marker> state <state>` on stderr; when it equals $2, `<marker> unchanged` and exits without
// dumping; else execs pg_dump (a TERM on cancellation reaches it). The eval'd text holds only "${k}" references.
const DUMP_UNLESS_UNCHANGED = [
  'm=$1; want=$2; n=$3; shift 3; cmd=; k=1',
  POSITIONAL_ARGV,
  'state=$(eval "$cmd" </dev/null 2>/dev/null) || state=',
  ...reportStateLines('$m', '$state', '$want'),
  'shift "$n"',
  'exec "$@"',
].join('\n');

export interface DumpCommand {
  argv: string[];
  /** Random per run: only the script can print a line that starts with it (readOutcome). */
  marker: string;
}

/** One remote command: the state query, then pg_dump unless the state is `kept` (the kept dump's state). */
export function dumpUnlessUnchanged(stateArgv: string[], dumpArgv: string[], kept: string | undefined): DumpCommand {
  const marker = newMarker('lifeboat-pg');
  return { marker, argv: ['sh', '-c', DUMP_UNLESS_UNCHANGED, 'lifeboat-pg-dump', marker, kept ?? '', String(stateArgv.length), ...stateArgv, ...dumpArgv] };
}

