// The constant wrapper every command runs in on an SSH source host. Config values only ever arrive as
// quoted positional arguments ("$@"), never spliced into the script.
//
// Why a wrapper: sshd keeps a session until its command exits and refuses "signal" requests for root
// sessions without privilege separation, so a cancelled activity cannot simply kill the remote command.
// Instead the wrapper watches its stdin: when Lifeboat closes it (cancellation, or the connection dies),
// the watcher TERMs the command. A secret can be handed over the same stdin first, as an exact number of
// bytes written to a private temp file whose path goes into an environment variable (e.g. PGPASSFILE),
// so it never appears on a command line visible to `ps`.
export const REMOTE_WRAPPER = [
  'c=; w=; f=',
  'cleanup() { [ -n "$f" ] && rm -f "$f"; }',
  'trap \'[ -n "$c" ] && kill -TERM "$c" 2>/dev/null; cleanup; exit 143\' HUP INT TERM',
  'if [ "$1" != - ]; then umask 077; f=$(mktemp) || exit 70; dd bs=1 count="$2" of="$f" 2>/dev/null || exit 70; export "$1=$f"; umask 022; fi',
  'shift 2',
  'exec 3<&0',
  '"$@" </dev/null & c=$!',
  '(cat <&3 >/dev/null 2>&1; kill -TERM "$c" 2>/dev/null) >/dev/null 2>&1 & w=$!',
  'exec 3<&-',
  'wait "$c"; s=$?',
  'kill "$w" 2>/dev/null; cleanup; exit "$s"',
].join('\n');

export interface SecretFile {
  /** Environment variable that receives the temp file's path. */
  env: string;
  content: string;
}

/** argv for the remote side: `sh -c <wrapper> lifeboat <env|-> <bytes> <argv…>`. */
export function wrapRemote(argv: string[], secret?: SecretFile): string[] {
  const len = secret ? Buffer.byteLength(secret.content) : 0;
  return ['sh', '-c', REMOTE_WRAPPER, 'lifeboat', secret?.env ?? '-', String(len), ...argv];
}
