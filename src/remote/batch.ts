// Several short commands in one session. Over SSH every session costs a round trip and a login shell on the host
// (whatever the user's shell rc does, on every session: 0.4 s here with pyenv in root's .bashrc), so a restore step
// that asks four small questions pays for four. The commands still travel as argv: the script refers to its
// positional parameters by number only, and no config value is ever spliced into it.
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../shared/errors';
import type { ExecOptions, ExecResult, Host } from './host';

// $1 = marker, $2 = 1 to stop after the first failure, then per command its argc and argv. Each command runs in
// turn (exec'd in a background subshell, so a TERM from the wrapper reaches it), followed on stdout and stderr by a
// line `<marker> <exit code>`. The eval'd string holds only "${k}" references, never an argument's text.
const BATCH_SCRIPT = [
  'm=$1; stop=$2; shift 2; c=',
  'trap \'[ -n "$c" ] && kill -TERM "$c" 2>/dev/null; exit 143\' HUP INT TERM',
  'while [ $# -gt 0 ]; do',
  '  n=$1; shift; cmd=; k=1',
  '  while [ "$k" -le "$n" ]; do cmd="$cmd \\"\\${$k}\\""; k=$((k + 1)); done',
  '  eval "exec $cmd" </dev/null & c=$!',
  '  wait "$c"; s=$?; c=',
  '  printf \'\\n%s %s\\n\' "$m" "$s"; printf \'\\n%s %s\\n\' "$m" "$s" >&2',
  '  shift "$n"',
  '  if [ "$s" -ne 0 ] && [ "$stop" = 1 ]; then exit 0; fi',
  'done',
].join('\n');

export interface BatchOptions extends Pick<ExecOptions, 'secretFile' | 'signal'> {
  /** Leave out the commands after the first one that fails (they are missing from the result). */
  stopAfterFailure?: boolean;
}

/**
 * Runs `commands` one after another in one session on `host`; each result as if run alone (its exit code, its
 * stdout, the tail of its stderr). A secret file is shared by all of them. Meant for short commands: stdout is
 * collected, not streamed.
 */
export async function execBatch(host: Host, commands: string[][], opts: BatchOptions = {}): Promise<ExecResult[]> {
  if (commands.length === 0 || commands.some((c) => c.length === 0)) throw new Error('execBatch: every command needs an argv');
  const marker = `lifeboat-batch-${randomBytes(12).toString('hex')}`;
  const argv = ['sh', '-c', BATCH_SCRIPT, 'lifeboat-batch', marker, opts.stopAfterFailure ? '1' : '0', ...commands.flatMap((c) => [String(c.length), ...c])];
  const res = await host.exec(argv, { ...(opts.secretFile ? { secretFile: opts.secretFile } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  const out = splitOutput(res.stdout, marker);
  const err = splitOutput(res.stderr, marker);
  const expected = opts.stopAfterFailure ? out.length : commands.length;
  if (res.exitCode !== 0 || out.length === 0 || out.length !== expected || out.length > commands.length) {
    throw new LifeboatError('CommandFailed', `${commands.map((c) => c[0]).join(', ')} on ${host.label}: the command batch ended early (exit ${res.exitCode}): ${res.stderr.trim().split('\n').slice(-3).join('\n')}`);
  }
  // stderr is a tail: the first commands' own text may be cut off, never their markers' order.
  const errors = err.length === out.length ? err : [...Array(out.length - err.length).fill({ text: '' }), ...err];
  return out.map((o, i) => ({ exitCode: o.code, stdout: o.text, stderr: errors[i]!.text }));
}

/** The text before each `\n<marker> <code>\n`, with the code; the newline the script added is not part of it. */
export function splitOutput(text: string, marker: string): Array<{ text: string; code: number }> {
  const parts: Array<{ text: string; code: number }> = [];
  const re = new RegExp(`\\n${marker} (\\d+)\\n`, 'g');
  let from = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    parts.push({ text: text.slice(from, m.index), code: Number(m[1]) });
    from = m.index + m[0].length;
  }
  return parts;
}
