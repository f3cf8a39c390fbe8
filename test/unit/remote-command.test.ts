// The remote wrapper (src/remote/remote-command.ts) run in a real `sh`, the way sshd runs it: stdin is a pipe
// that carries the secret first and then stays open; closing it is how a cancelled activity stops the command.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { REMOTE_WRAPPER, wrapRemote, type SecretFile } from '../../src/remote/remote-command';
import { classifyPgFailure, passfileLine } from '../../src/sources/postgres';
import { PostgresArtifact } from '../../src/config/schema';
import { LifeboatError } from '../../src/shared/errors';

const ENV = 'LIFEBOAT_TEST_SECRET';
// Shell metacharacters, quotes, passfile escapes, a newline and multi-byte characters (byte length ≠ length).
const NASTY = `*:*:*:*:hunter2\\:x $(touch pwned) \`touch pwned2\` '"; $HOME * \\\\ ünï 🚀\nsecond line\n`;

let work: string;
/** TMPDIR of the wrapper (mktemp honours it), so temp files and leftovers can be checked. */
let tmp: string;
const children: ChildProcessByStdio<Writable, Readable, Readable>[] = [];

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'lifeboat-remote-'));
  tmp = join(work, 'tmp');
  mkdirSync(tmp);
});

afterEach(() => {
  for (const c of children.splice(0)) {
    c.stdin.destroy();
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  rmSync(work, { recursive: true, force: true });
});

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** ms from start (or from `mark()`) to the wrapper's exit. */
  ms: number;
  /** Whether our side of stdin was still open when the wrapper exited. */
  stdinOpenAtExit: boolean;
}

/**
 * Starts `wrapRemote(argv, secret)` the way ssh.ts drives it: writes the secret to stdin and keeps stdin
 * open while the command runs (its EOF means "cancel"), ending it only once the wrapper has exited.
 */
function start(argv: string[], secret?: SecretFile, opts: { extraStdin?: string } = {}) {
  const cmd = wrapRemote(argv, secret);
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd: work, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  children.push(child);
  child.stdin.on('error', () => {}); // EPIPE once the wrapper is gone
  let t0 = Date.now();
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<Outcome>((resolve) => {
    let exitAt = 0;
    let stdinOpenAtExit = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
    child.on('exit', (code, signal) => {
      exitAt = Date.now();
      exit = { code, signal };
      stdinOpenAtExit = !child.stdin.writableEnded;
      child.stdin.end(); // lets an orphaned stdin watcher finish, like ssh.ts does on 'exit'
    });
    child.on('close', () => resolve({ ...exit, stdout: Buffer.concat(out), stderr: err, ms: exitAt - t0, stdinOpenAtExit }));
  });
  if (secret) child.stdin.write(secret.content);
  if (opts.extraStdin) child.stdin.write(opts.extraStdin);
  return {
    child,
    done,
    mark: () => {
      t0 = Date.now();
    },
  };
}

const run = (argv: string[], secret?: SecretFile, opts?: { extraStdin?: string }) => start(argv, secret, opts).done;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie answers kill -0 but is not running; only count it once nobody reaps it (ps shows Z).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts `sleep 30` under the wrapper; resolves once the sleep runs, with its pid. */
async function startSleeper(secret?: SecretFile) {
  const pidfile = join(work, 'pidfile');
  const h = start(['sh', '-c', 'echo $$ > "$1"; exec sleep 30', 'probe', pidfile], secret);
  const pid = await waitFor('the pidfile', () => {
    const text = existsSync(pidfile) ? readFileSync(pidfile, 'utf8') : '';
    return text.endsWith('\n') ? Number(text) : undefined;
  });
  expect(pid).toBeGreaterThan(0);
  // exec keeps the pid: wait until it really is sleep, not the sh before the exec.
  await waitFor('sleep', () => (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep' ? true : undefined));
  return { ...h, pid };
}

describe('wrapRemote', () => {
  it('without a secret: sh -c <wrapper> lifeboat - 0 <argv…>', () => {
    expect(wrapRemote(['pg_dump', '--dbname=app'])).toEqual(['sh', '-c', REMOTE_WRAPPER, 'lifeboat', '-', '0', 'pg_dump', '--dbname=app']);
  });

  it('with a secret: the env var name and the content length in bytes (not characters)', () => {
    const cmd = wrapRemote(['x', 'y'], { env: 'PGPASSFILE', content: 'ü🚀\n' });
    expect(cmd).toEqual(['sh', '-c', REMOTE_WRAPPER, 'lifeboat', 'PGPASSFILE', '7', 'x', 'y']);
  });

  it('the wrapper script is a constant and the secret never appears in the argv', () => {
    const secret = { env: 'PGPASSFILE', content: passfileLine('hunter2') };
    const cmd = wrapRemote(['pg_dump', '--username', 'other'], secret);
    expect(cmd[2]).toBe(wrapRemote(['anything'])[2]);
    expect(cmd.join('\0')).not.toContain('hunter2');
  });
});

describe('REMOTE_WRAPPER in a real shell', () => {
  // Copies the secret file out (for a byte-exact comparison), then prints its mode and path.
  const probe = ['sh', '-c', 'cp "$LIFEBOAT_TEST_SECRET" copy; stat -c %a "$LIFEBOAT_TEST_SECRET"; printf "%s\\n" "$LIFEBOAT_TEST_SECRET"'];

  it('hands the secret over byte for byte as a mode-600 temp file named by the env var, then deletes it', async () => {
    const res = await run(probe, { env: ENV, content: NASTY });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(readFileSync(join(work, 'copy'))).toEqual(Buffer.from(NASTY));
    const [mode, path, rest] = res.stdout.toString().split('\n');
    expect(mode).toBe('600');
    expect(path!.startsWith(`${tmp}/`)).toBe(true);
    expect(rest).toBe('');
    expect(existsSync(path!)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
    // Nothing in the secret was expanded or executed by a shell.
    expect(readdirSync(work).sort()).toEqual(['copy', 'tmp']);
  });

  it('reads exactly the announced number of bytes, even when more follows on stdin', async () => {
    const res = await run(probe, { env: ENV, content: 'exact' }, { extraStdin: 'NOT PART OF THE SECRET' });
    expect(res.code).toBe(0);
    expect(readFileSync(join(work, 'copy'), 'utf8')).toBe('exact');
  });

  it('works with PGPASSFILE and a libpq passfile line, as the postgres source uses it', async () => {
    const line = passfileLine(`p:w\\d $(x) '"`);
    const res = await run(['sh', '-c', 'cat "$PGPASSFILE"'], { env: 'PGPASSFILE', content: line });
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toBe(line);
  });

  it('without a secret no temp file is created and the env var is not set', async () => {
    const res = await run(['sh', '-c', 'printf "[%s]" "${LIFEBOAT_TEST_SECRET-unset}"; ls -A "$TMPDIR"']);
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toBe('[unset]');
  });

  it('passes arguments with spaces, quotes, newlines and shell syntax through untouched', async () => {
    const args = ['a b', "it's", '"q"', 'two\nlines', '$HOME', '$(touch pwned)', '*', '', ' ', '-', '--', '\\'];
    const res = await run(['sh', '-c', 'printf "%s\\0" "$@"', 'probe', ...args], { env: ENV, content: 'x' });
    expect(res.code).toBe(0);
    expect(res.stdout.toString().split('\0')).toEqual([...args, '']);
    expect(existsSync(join(work, 'pwned'))).toBe(false);
  });

  it("propagates the command's exit code and removes the temp file on failure too", async () => {
    const res = await run(['sh', '-c', 'test -f "$LIFEBOAT_TEST_SECRET" && exit 3; exit 9'], { env: ENV, content: 'x' });
    expect(res.code).toBe(3);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a missing command exits 127 (classified as MissingTool) and still removes the temp file', async () => {
    const res = await run(['lifeboat-no-such-program-xyz'], { env: ENV, content: 'x' });
    expect(res.code).toBe(127);
    expect(readdirSync(tmp)).toEqual([]);
    const a = PostgresArtifact.parse({ name: 'db', type: 'postgres', database: 'app' });
    expect((classifyPgFailure('h', a, res.code!, res.stderr) as LifeboatError).code).toBe('MissingTool');
  });

  it("the command's stdin is /dev/null: it reads EOF at once, neither the secret nor what follows", async () => {
    const h = start(['sh', '-c', 'cat; echo "read: done"; readlink /proc/self/fd/0'], { env: ENV, content: 'SECRET' }, { extraStdin: 'MORE INPUT\n' });
    const res = await h.done;
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toBe('read: done\n/dev/null\n');
  });

  it('normal completion returns promptly while stdin is still open (the watcher does not keep it alive)', async () => {
    const h = start(['sh', '-c', 'echo ok'], { env: ENV, content: 'x' });
    const timeout = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 3000).unref());
    const res = await Promise.race([h.done, timeout]);
    if (res === 'still running') throw new Error('the wrapper did not exit after its command completed, with stdin open');
    expect(res.stdinOpenAtExit).toBe(true);
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toBe('ok\n');
    expect(res.ms).toBeLessThan(2000);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('closing stdin (a cancelled activity) TERMs the command: exit 143 within ~2 s, the command is gone, so is the temp file', async () => {
    const h = await startSleeper({ env: ENV, content: 'x' });
    expect(readdirSync(tmp)).toHaveLength(1); // the secret file exists while the command runs
    expect(alive(h.pid)).toBe(true);
    h.mark();
    h.child.stdin.end();
    const res = await h.done;
    expect(res.ms).toBeLessThan(2000);
    expect({ code: res.code, signal: res.signal }).toEqual({ code: 143, signal: null });
    await waitFor('the sleep to be gone', () => (alive(h.pid) ? undefined : true), 1000).catch(() => undefined);
    expect(alive(h.pid)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('closing stdin stops the command without a secret too', async () => {
    const h = await startSleeper();
    h.mark();
    h.child.stdin.end();
    const res = await h.done;
    expect(res.ms).toBeLessThan(2000);
    expect(res.code).toBe(143);
    await waitFor('the sleep to be gone', () => (alive(h.pid) ? undefined : true), 1000).catch(() => undefined);
    expect(alive(h.pid)).toBe(false);
  });

  it('SIGTERM to the wrapper also stops the command promptly and removes the temp file', async () => {
    const h = await startSleeper({ env: ENV, content: 'x' });
    // Let the wrapper settle into waiting for its child: a signal that lands earlier takes another path in dash.
    await new Promise((resolve) => setTimeout(resolve, 300));
    h.mark();
    h.child.kill('SIGTERM');
    const res = await h.done;
    expect(res.ms).toBeLessThan(1500);
    expect({ code: res.code, signal: res.signal }).toEqual({ code: 143, signal: null });
    expect(readdirSync(tmp)).toEqual([]);
    await waitFor('the sleep to be gone', () => (alive(h.pid) ? undefined : true), 1000).catch(() => undefined);
    expect(alive(h.pid)).toBe(false);
  });
});
