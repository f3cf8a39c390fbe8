// Several short commands in one session. Over SSH every session costs a round trip and a login shell on the host
// (whatever the user's shell rc does, on every session: 0.4 s here with pyenv in root's .bashrc), so a restore step
// that asks four small questions pays for four. The commands still travel as argv: the script refers to its
// positional parameters by number only, and no config value is ever spliced into it.
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../shared/errors';
import type { ExecOptions, ExecResult, Host } from './host';

/**
 * Sets `cmd` to `"${1}" "${2}" … "${n}"`: references to the first n positional parameters (with `cmd=` and `k=1`
 * before it), for `eval "exec $cmd"`. An argument's text never enters the eval'd string.
 */
export const POSITIONAL_ARGV = 'while [ "$k" -le "$n" ]; do cmd="$cmd \\"\\${$k}\\""; k=$((k + 1)); done';

// $1 = marker, $2 = 1 to stop after the first failure, then per command its argc and argv. Each command runs in
// turn (exec'd in a background subshell, so a TERM from the wrapper reaches it), followed on stdout and stderr by a
// line `<marker> <exit code>`. The eval'd string holds only "${k}" references, never an argument's text.
const BATCH_SCRIPT = [
  'm=$1; stop=$2; shift 2; c=',
  'trap \'[ -n "$c" ] && kill -TERM "$c" 2>/dev/null; exit 143\' HUP INT TERM',
  'while [ $# -gt 0 ]; do',
  '  n=$1; shift; cmd=; k=1',
  `  ${POSITIONAL_ARGV}`,
  '  eval "exec $cmd" </dev/null & c=$!',
  '  wait "$c"; s=$?; c=',
  '  printf \'\\n%s %s\\n\' "$m" "$s"; printf \'\\n%s %s\\n\' "$m" "$s" >&2',
  '  shift "$n"',
  '  if [ "$s" -ne 0 ] && [ "$stop" = 1 ]; then exit 0; fi',
  'done',
].join('\n');

/** What runs a command directly on a host (a batch, or a command alone). */
export type Sender = Pick<Host, 'exec' | 'label'>;

export interface BatchOptions extends Pick<ExecOptions, 'secretFile' | 'signal'> {
  /** Leave out the commands after the first one that fails (they are missing from the result). */
  stopAfterFailure?: boolean;
}

/**
 * Runs `commands` one after another in one session on `host`; each result as if run alone (its exit code, its
 * stdout, the tail of its stderr). A secret file is shared by all of them. Meant for short commands: stdout is
 * collected, not streamed.
 */
export async function execBatch(host: Sender, commands: string[][], opts: BatchOptions = {}): Promise<ExecResult[]> {
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

interface Pending {
  /** Sends directly, under the caller's own label. */
  via: Sender;
  argv: string[];
  opts: ExecOptions;
  resolve: (r: ExecResult) => void;
  reject: (err: unknown) => void;
}

/**
 * For one connection: commands issued while it opens (or in the same tick once it is open) go out as one batch per
 * secret and signal, so a step that asks several small things at once pays one session. Only for short commands
 * that may as well run one after another (planning checks); a streamed command goes out alone.
 */
export class CommandCoalescer {
  private queue: Pending[] = [];

  /** `ready` opens the connection (or says it is open). */
  constructor(private readonly ready: () => Promise<unknown>) {}

  /** `via` runs a command on this connection directly. */
  exec(via: Sender, argv: string[], opts: ExecOptions): Promise<ExecResult> {
    if (opts.stdoutTo) return via.exec(argv, opts);
    return new Promise((resolve, reject) => {
      this.queue.push({ via, argv, opts, resolve, reject });
      if (this.queue.length === 1) void this.ready().then(() => this.flush(), () => this.flush());
    });
  }

  private flush(): void {
    const groups = new Map<string, Map<AbortSignal | undefined, Pending[]>>();
    for (const p of this.queue.splice(0)) {
      const secret = p.opts.secretFile ? `${p.opts.secretFile.env}\0${p.opts.secretFile.content}` : '';
      const bySignal = groups.get(secret) ?? groups.set(secret, new Map()).get(secret)!;
      (bySignal.get(p.opts.signal) ?? bySignal.set(p.opts.signal, []).get(p.opts.signal)!).push(p);
    }
    for (const group of [...groups.values()].flatMap((m) => [...m.values()])) void this.send(group);
  }

  private async send(group: Pending[]): Promise<void> {
    const [first] = group;
    const { secretFile, signal } = first!.opts;
    try {
      const results = group.length === 1 ? [await first!.via.exec(first!.argv, first!.opts)] : await execBatch(first!.via, group.map((p) => p.argv), { ...(secretFile ? { secretFile } : {}), ...(signal ? { signal } : {}) });
      group.forEach((p, i) => p.resolve(results[i]!));
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }
}

/**
 * `host` with its short commands issued together (while its connection opens, or in one tick) sent as one session.
 * A host without a connection to wait for (the backup host itself) is returned as it is: its commands cost no login.
 */
export function coalescing(host: Host & { ready?: () => Promise<unknown> }): Host {
  const ready = host.ready?.bind(host);
  if (!ready) return host;
  const coalescer = new CommandCoalescer(ready);
  return { label: host.label, exec: (argv, opts = {}) => coalescer.exec(host, argv, opts), rsyncTarget: () => host.rsyncTarget(), close: () => host.close() };
}
