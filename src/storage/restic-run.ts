// Running restic: the binary (PATH first, then the one scripts/ensure-binaries.sh builds), its version, one call
// with its JSON output parsed line by line, and its failures in Lifeboat's words. Secrets reach restic through
// the child's environment only: never argv (visible to every user in `ps`), never a message.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { dieWithWorker } from '../shared/die-with-worker';
import { LifeboatError } from '../shared/errors';
import { HOST_KEY_REFUSED } from '../remote/ssh-options';

/** Oldest restic Lifeboat relies on: `--retry-lock`, JSON from backup/restore/check, restore's `--include-xattr`. */
export const MIN_RESTIC = [0, 17] as const;
/** How long a write waits for another process's lock (another plan's backup or prune in the same repository). */
export const RETRY_LOCK = '5m';

/** restic's documented exit codes. */
const EXIT = { incomplete: 3, noRepository: 10, locked: 11, wrongPassword: 12 } as const;
/** The line that says best why ssh refused the host, most specific first. */
const HOST_KEY_REASONS = [/No \S+ host key is known/, /Host key for \S+ has changed/, HOST_KEY_REFUSED];
/** What S3 and friends answer to a bad key or secret, as restic prints it. */
const AUTH_PATTERNS = /InvalidAccessKeyId|SignatureDoesNotMatch|signature we calculated does not match|Access Key Id you provided does not exist|Access Denied|AccessDenied|\b403 Forbidden|\b401 Unauthorized|permission denied \(publickey|authentication failed/i;

/** What restic says when stored data fails its authentication or hash, after its own retries. */
const DAMAGE_PATTERNS = /ciphertext verification failed|hash mismatch|checksum mismatch|damaged pack/i;

/** PATH first (a user's own install wins), then `$LIFEBOAT_CACHE/bin` (default ~/.cache/lifeboat/bin). */
export function findRestic(): string {
  const cache = join(process.env.LIFEBOAT_CACHE || join(homedir(), '.cache', 'lifeboat'), 'bin');
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), cache];
  const found = dirs.map((d) => join(d, 'restic')).find((p) => existsSync(p));
  if (!found) throw new LifeboatError('MissingTool', `restic is not installed on the backup host (not on PATH, not in ${cache}); install restic ${MIN_RESTIC.join('.')} or later`);
  return found;
}

const checked = new Map<string, Promise<string>>();

/** The restic binary, once its version is known to be recent enough (asked once per process and path). */
export function resticBinary(): Promise<string> {
  const bin = findRestic();
  if (!checked.has(bin)) {
    checked.set(bin, checkVersion(bin));
    checked.get(bin)!.catch(() => checked.delete(bin)); // an install fixed by hand is seen on the next call
  }
  return checked.get(bin)!;
}

async function checkVersion(bin: string): Promise<string> {
  const res = await execa(bin, ['version'], { reject: false, timeout: 30_000 });
  const version = parseResticVersion(res.stdout);
  if (!version) throw new LifeboatError('MissingTool', `${bin} does not look like restic (\`restic version\` said ${JSON.stringify(res.stdout.slice(0, 100))})`);
  if (!versionAtLeast(version, MIN_RESTIC)) {
    throw new LifeboatError('MissingTool', `${bin} is restic ${version.join('.')}; Lifeboat needs ${MIN_RESTIC.join('.')} or later`);
  }
  return bin;
}

/** `restic 0.18.1 compiled with go1.24 on linux/amd64` → [0, 18, 1]. */
export function parseResticVersion(text: string): number[] | undefined {
  const m = /^restic (\d+)\.(\d+)\.(\d+)/m.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function versionAtLeast(version: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = version[i] ?? 0;
    const b = min[i]!;
    if (a !== b) return a > b;
  }
  return true;
}

export interface ResticCall {
  args: string[];
  cwd?: string;
  /** RESTIC_REPOSITORY, RESTIC_PASSWORD and the backend's variables: the child's environment only. */
  env: Record<string, string>;
  /** Names the call in errors: "storage restic-repo: backup". */
  what: string;
  input?: string;
  signal?: AbortSignal;
  /** Give up (StorageError, retryable) when restic has not finished by then. */
  deadlineMs?: number;
  /** Every JSON line restic prints (status, summary, error messages); other lines are ignored. */
  onJson?: (message: Record<string, unknown>) => void;
  /** Where ssh writes its own messages (sftp: repositories): read into the error when the call fails. */
  sshLog?: string;
  /** Stop restic (IntegrityCheckFailed) when stdout grows past this: what is read into memory stays bounded. */
  maxStdoutBytes?: number;
}

export interface ResticOutput {
  stdout: string;
  /** The JSON lines of stdout, in order. */
  messages: Array<Record<string, unknown>>;
}

/**
 * One restic call; a non-zero exit becomes a LifeboatError naming what failed and restic's own words. restic retries
 * a failing backend for up to 15 minutes, also when the backend refuses the credentials (only S3's AccessDenied
 * counts as permanent there): a retry caused by refused credentials stops the call at once as AuthFailed, and
 * `deadlineMs` bounds calls that must answer quickly (preflight) as a retryable StorageError.
 */
export async function runRestic(call: ResticCall): Promise<ResticOutput> {
  const bin = await resticBinary();
  const stop = new AbortController();
  let stopped: LifeboatError | undefined;
  const stopWith = (err: LifeboatError) => {
    stopped ??= err;
    stop.abort();
  };
  const child = execa(...dieWithWorker(bin, call.args), {
    env: childEnv(call.env),
    extendEnv: false,
    ...(call.cwd ? { cwd: call.cwd } : {}),
    ...(call.input !== undefined ? { input: call.input } : { stdin: 'ignore' as const }),
    reject: false,
    cancelSignal: call.signal ? AbortSignal.any([call.signal, stop.signal]) : stop.signal,
    forceKillAfterDelay: 5000,
    buffer: false,
  });
  const lines: string[] = [];
  const messages: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  if (call.maxStdoutBytes !== undefined) limitOutput(child.stdout, call.maxStdoutBytes, () => stopWith(new LifeboatError('IntegrityCheckFailed', `${call.what}: restic printed more than ${call.maxStdoutBytes} bytes`, { tooLarge: true })));
  const flushOut = eachLine(child.stdout, (line) => {
    lines.push(line);
    const msg = parseLine(line);
    if (!msg) return;
    messages.push(msg);
    call.onJson?.(msg);
  });
  const flushErr = eachLine(child.stderr, (raw) => {
    const line = readableLine(raw);
    stderr.push(line);
    if (stderr.length > 200) stderr.shift();
    if (/returned error, retrying/.test(line) && AUTH_PATTERNS.test(line)) stopWith(new LifeboatError('AuthFailed', `${call.what}: the repository's backend refused the credentials (${line.trim().slice(0, 500)})`));
  });
  const deadline = call.deadlineMs ? setTimeout(() => stopWith(new LifeboatError('StorageError', `${call.what}: no answer from the repository within ${Math.round(call.deadlineMs! / 1000)} s (${lastLines(stderr.join('\n')) || 'restic said nothing'})`)), call.deadlineMs) : undefined;
  const res = await child.finally(() => clearTimeout(deadline));
  flushOut();
  flushErr();
  call.signal?.throwIfAborted();
  if (stopped) throw stopped;
  if (res.exitCode !== 0) {
    const ssh = call.sshLog ? (await readFile(call.sshLog, 'utf8').catch(() => '')).split('\n').map((l) => (l.trim() ? `ssh: ${l.trim()}` : '')) : [];
    throw resticError(call.what, res.exitCode, [...ssh, ...stderr, errorMessages(messages)].filter(Boolean).join('\n'), (res as { code?: string }).code);
  }
  return { stdout: lines.join('\n'), messages };
}

/** restic --json prints its errors as JSON on stderr: their text is what a message should show. */
function readableLine(line: string): string {
  const msg = parseLine(line);
  if (!msg) return line;
  const err = msg.error as { message?: unknown } | undefined;
  const text = typeof err?.message === 'string' ? err.message : typeof msg.message === 'string' ? msg.message : line;
  return [typeof msg.item === 'string' ? msg.item : '', text.trim()].filter(Boolean).join(': ');
}

function limitOutput(stream: NodeJS.ReadableStream | null, max: number, onExceeded: () => void): void {
  let bytes = 0;
  stream?.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > max) onExceeded();
  });
}

/** Calls `onLine` per line as the stream flows; the returned flush hands over a last line without a newline. */
function eachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): () => void {
  let pending = '';
  const flush = () => {
    if (pending) onLine(pending);
    pending = '';
  };
  stream?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  });
  stream?.on('end', flush);
  return flush;
}

/**
 * The worker's environment without the variables that choose a repository or unlock one (a stray
 * RESTIC_PASSWORD_COMMAND must not run, a RESTIC_REPOSITORY_FILE must not redirect), plus the call's; tuning such as
 * RESTIC_CACHE_DIR or RESTIC_COMPRESSION passes. Times are UTC: `--time` is read in the local zone.
 */
function childEnv(own: Record<string, string>): Record<string, string> {
  const unsafe = /^RESTIC_(REPOSITORY|PASSWORD|KEY_HINT)/;
  const inherited = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !unsafe.test(e[0])));
  return { ...inherited, TZ: 'UTC', RESTIC_PROGRESS_FPS: '0.5', ...own };
}

function parseLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `{"message_type":"error","error":{"message":…},"item":…}` lines, as text. */
function errorMessages(messages: Array<Record<string, unknown>>): string {
  return messages
    .filter((m) => m.message_type === 'error' || m.message_type === 'exit_error')
    .map((m) => {
      const err = m.error as { message?: string } | undefined;
      return [m.item, err?.message ?? m.message].filter(Boolean).join(': ');
    })
    .join('\n');
}

/** restic's exit code and stderr in Lifeboat's vocabulary: permanent where no retry helps. */
export function resticError(what: string, exitCode: number | undefined, stderr: string, errno?: string): LifeboatError {
  if (errno === 'ENOENT') return new LifeboatError('MissingTool', `${what}: restic is not installed on the backup host`);
  const said = lastLines(stderr) || `exit ${exitCode}`;
  const details = { exitCode, noRepository: exitCode === EXIT.noRepository };
  // An sftp: repository's ssh refused the host (its key is not the pinned one): permanent, like a source's.
  const lines = stderr.split('\n');
  const hostKey = HOST_KEY_REASONS.map((re) => lines.find((line) => re.test(line))).find(Boolean);
  if (hostKey) return new LifeboatError('HostKeyRejected', `${what}: the repository host's SSH key is not pinned in knownHosts (${hostKey.trim()})`, details);
  if (exitCode === EXIT.wrongPassword) return new LifeboatError('AuthFailed', `${what}: wrong restic repository password (${said})`, details);
  if (exitCode === EXIT.noRepository) return new LifeboatError('ConfigError', `${what}: there is no restic repository there (${said}); create it with \`restic init\` or set init: true on the storage`, details);
  if (AUTH_PATTERNS.test(stderr)) return new LifeboatError('AuthFailed', `${what}: the repository's backend refused the credentials (${said})`, details);
  if (DAMAGE_PATTERNS.test(stderr)) return new LifeboatError('ChecksumMismatch', `${what}: the repository holds damaged data (${said}); run \`restic check --read-data\``, details);
  if (exitCode === EXIT.locked) return new LifeboatError('StorageError', `${what}: the repository stayed locked by another restic process for ${RETRY_LOCK} (${said})`, details);
  if (exitCode === EXIT.incomplete) return new LifeboatError('CommandFailed', `${what}: restic could not read every file (${said})`, details);
  return new LifeboatError('StorageError', `${what}: restic failed with exit ${exitCode ?? 'signal'}: ${said}`, details);
}

function lastLines(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-4).join(' | ').slice(0, 1500);
}
