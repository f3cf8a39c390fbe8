import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresArtifact } from '../../src/config/schema';
import { pgDumpArgv, pgCommand, passfileLine, dumpFileName, classifyPgFailure } from '../../src/sources/postgres';
import { LifeboatError } from '../../src/shared/errors';

const artifact = (over: Record<string, unknown> = {}): PostgresArtifact =>
  PostgresArtifact.parse({ name: 'appdb', type: 'postgres', database: 'app', ...over });

const PASSWORD = 'hunter2:with\\odd $(chars) \'"`';

/** Splits a libpq passfile line into its 5 fields, undoing `\:` and `\\` the way libpq does. */
function parsePassfileLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) cur += line[++i];
    else if (c === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else cur += c;
  }
  fields.push(cur);
  return fields;
}

describe('pgDumpArgv', () => {
  it('local socket by default: no --host/--port, role postgres, plain format', () => {
    expect(pgDumpArgv(artifact())).toEqual(['pg_dump', '--format=plain', '--no-password', '--username', 'postgres', '--dbname=app']);
  });

  it('host and port', () => {
    expect(pgDumpArgv(artifact({ host: 'db.internal', port: 5433, user: 'backup' }))).toEqual([
      'pg_dump',
      '--format=plain',
      '--no-password',
      '--username',
      'backup',
      '--host',
      'db.internal',
      '--port',
      '5433',
      '--dbname=app',
    ]);
  });

  it('custom format', () => {
    const argv = pgDumpArgv(artifact({ format: 'custom' }));
    expect(argv[1]).toBe('--format=custom');
    expect(argv.at(-1)).toBe('--dbname=app');
  });

  it('never contains a password, even when one is configured', () => {
    const argv = pgDumpArgv(artifact({ password: { env: 'PGPASS' } }));
    expect(argv.join(' ')).not.toMatch(/password=|PGPASS/i);
    expect(argv).toContain('--no-password');
  });
});

describe('dumpFileName', () => {
  it('plain → database/<name>.sql, custom → database/<name>.dump', () => {
    expect(dumpFileName(artifact())).toBe('database/appdb.sql');
    expect(dumpFileName(artifact({ format: 'custom' }))).toBe('database/appdb.dump');
  });
});

describe('pgCommand', () => {
  const dump = pgDumpArgv(artifact());

  it('without password or runAs returns the argv unchanged', () => {
    expect(pgCommand(artifact(), dump, false)).toEqual(dump);
  });

  it('with password wraps in sh -c <script> lifeboat-pgpass <argv…>', () => {
    const cmd = pgCommand(artifact(), dump, true);
    expect(cmd.slice(0, 2)).toEqual(['sh', '-c']);
    expect(cmd[2]).toContain('PGPASSFILE=');
    expect(cmd[2]).toContain('umask 077');
    expect(cmd[3]).toBe('lifeboat-pgpass');
    expect(cmd.slice(4)).toEqual(dump);
  });

  it('the wrapper script is a constant: it does not depend on the artifact or the argv', () => {
    const a = pgCommand(artifact(), ['x'], true)[2];
    const b = pgCommand(artifact({ host: 'h', user: 'u', database: 'other' }), dump, true)[2];
    expect(a).toBe(b);
  });

  it('runAs prefixes sudo -n -u <user> --', () => {
    expect(pgCommand(artifact({ runAs: 'postgres' }), dump, false)).toEqual(['sudo', '-n', '-u', 'postgres', '--', ...dump]);
  });

  it('runAs with password: sudo outside, passfile wrapper inside', () => {
    const cmd = pgCommand(artifact({ runAs: 'pg' }), dump, true);
    expect(cmd.slice(0, 7)).toEqual(['sudo', '-n', '-u', 'pg', '--', 'sh', '-c']);
    expect(cmd[8]).toBe('lifeboat-pgpass');
    expect(cmd.slice(9)).toEqual(dump);
  });

  it('the password never appears in the argv', () => {
    const a = artifact({ runAs: 'pg', host: 'h', port: 5432, password: { env: 'X' } });
    for (const withPassword of [true, false]) {
      const cmd = pgCommand(a, pgDumpArgv(a), withPassword);
      const joined = cmd.join('\0');
      expect(joined).not.toContain(PASSWORD);
      expect(joined).not.toContain('hunter2');
      expect(joined).not.toContain(passfileLine(PASSWORD).trim());
    }
  });
});

describe('the PASSFILE wrapper in a real shell', () => {
  // Replaces pg_dump with a probe that prints the passfile, its mode and its path.
  const probe = ['sh', '-c', 'cat "$PGPASSFILE"; stat -c %a "$PGPASSFILE"; printf "%s\\n" "$PGPASSFILE"'];

  /** Runs the wrapped argv with a private TMPDIR (mktemp honours it), so leftovers can be checked. */
  function runWrapped(argv: string[], stdin: string) {
    const cmd = pgCommand(artifact({ password: { env: 'X' } }), argv, true);
    const tmp = mkdtempSync(join(tmpdir(), 'lifeboat-pgpass-'));
    try {
      const res = spawnSync(cmd[0]!, cmd.slice(1), { input: stdin, encoding: 'utf8', timeout: 10_000, env: { ...process.env, TMPDIR: tmp } });
      return { ...res, tmp, leftovers: readdirSync(tmp) };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  it('feeds stdin to a mode-600 temp file named by PGPASSFILE, then deletes it', () => {
    const line = passfileLine(PASSWORD);
    const res = runWrapped(probe, line);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const lines = res.stdout.split('\n');
    // passfile content, mode, path, trailing ''
    expect(lines).toHaveLength(4);
    expect(`${lines[0]}\n`).toBe(line);
    expect(lines[1]).toBe('600');
    const path = lines[2]!;
    expect(path.startsWith(`${res.tmp}/`)).toBe(true);
    expect(res.leftovers).toEqual([]);
    expect(existsSync(path)).toBe(false);
    // No shell expansion happened: the password comes back byte for byte.
    expect(parsePassfileLine(lines[0]!)).toEqual(['*', '*', '*', '*', PASSWORD]);
  });

  it('passes the arguments through untouched and propagates the exit code; the file is removed on failure too', () => {
    const res = runWrapped(['sh', '-c', 'printf "%s|" "$@"; echo; printf "%s\\n" "$PGPASSFILE"; exit 3', 'probe', 'a b', '$HOME', '*', ''], 'x\n');
    expect(res.status).toBe(3);
    const [args, path] = res.stdout.split('\n');
    expect(args).toBe('a b|$HOME|*||');
    expect(path!.startsWith(`${res.tmp}/`)).toBe(true);
    expect(res.leftovers).toEqual([]);
  });

  it('a missing command exits 127 (classified as MissingTool) and still removes the file', () => {
    const res = runWrapped(['lifeboat-no-such-program-xyz'], 'x\n');
    expect(res.status).toBe(127);
    expect(res.leftovers).toEqual([]);
    expect((classifyPgFailure('h', artifact(), res.status!, res.stderr) as LifeboatError).code).toBe('MissingTool');
  });

  it('SIGTERM to the wrapper (a cancelled run) stops the wrapped command promptly and removes the passfile', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lifeboat-pgpass-'));
    try {
      // The probe prints its pid, then becomes a long sleep (exec keeps the pid).
      const cmd = pgCommand(artifact({ password: { env: 'X' } }), ['sh', '-c', 'echo $$; exec sleep 5'], true);
      const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'ignore'], env: { ...process.env, TMPDIR: tmp } });
      child.stdin.end('x\n');
      const pid = Number(await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      expect(pid).toBeGreaterThan(0);
      expect(readdirSync(tmp)).toHaveLength(1); // the passfile exists while the command runs
      // Let the wrapper settle into waiting for its child: a signal that lands earlier takes another path in dash.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      child.kill('SIGTERM');
      const exit = await exited;
      expect(Date.now() - started).toBeLessThan(1500);
      expect(exit).toEqual({ code: 143, signal: null });
      expect(readdirSync(tmp)).toEqual([]);
      // The wrapped command got the TERM too (it is not left running).
      const alive = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 20 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(alive()).toBe(false);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('passfileLine', () => {
  it('matches any host/port/db/user and ends with a newline', () => {
    expect(passfileLine('plain')).toBe('*:*:*:*:plain\n');
  });

  it("escapes ':' and '\\' as libpq requires", () => {
    expect(passfileLine('a:b')).toBe('*:*:*:*:a\\:b\n');
    expect(passfileLine('a\\b')).toBe('*:*:*:*:a\\\\b\n');
    expect(passfileLine('\\:')).toBe('*:*:*:*:\\\\\\:\n');
  });

  it('round-trips through libpq-style unescaping', () => {
    for (const pw of ['', 'p', 'a:b:c', 'back\\slash', '\\:\\:', 'trailing\\', ':leading', PASSWORD, 'ünï 🚀']) {
      const line = passfileLine(pw);
      expect(line.endsWith('\n')).toBe(true);
      expect(parsePassfileLine(line.slice(0, -1))).toEqual(['*', '*', '*', '*', pw]);
    }
  });
});

describe('classifyPgFailure', () => {
  const a = artifact();
  const classify = (exit: number, stderr: string) => classifyPgFailure('db1 (ssh)', a, exit, stderr) as LifeboatError;

  it('password authentication failed → AuthFailed (permanent)', () => {
    const err = classify(1, 'pg_dump: error: connection to server at "db" (10.0.0.1), port 5432 failed: FATAL:  password authentication failed for user "postgres"\n');
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err.code).toBe('AuthFailed');
    expect(err.permanent).toBe(true);
    expect(err.message).toContain('app');
    expect(err.message).toContain('db1 (ssh)');
  });

  it('other authentication failures → AuthFailed', () => {
    expect(classify(1, 'fe_sendauth: no password supplied').code).toBe('AuthFailed');
    expect(classify(1, 'FATAL:  Peer authentication failed for user "postgres"').code).toBe('AuthFailed');
    expect(classify(1, 'FATAL:  role "backup" does not exist').code).toBe('AuthFailed');
  });

  it('database "x" does not exist → ConfigError (permanent) naming the database', () => {
    const err = classify(1, 'pg_dump: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: FATAL:  database "x" does not exist\n');
    expect(err.code).toBe('ConfigError');
    expect(err.permanent).toBe(true);
    expect(err.message).toContain('database "app" does not exist');
  });

  it('exit 127 → MissingTool (permanent)', () => {
    const err = classify(127, 'sh: 1: pg_dump: not found\n');
    expect(err.code).toBe('MissingTool');
    expect(err.permanent).toBe(true);
  });

  it('anything else → CommandFailed, not permanent, with the exit code and the last stderr lines', () => {
    const stderr = ['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'pg_dump: error: query failed: server closed the connection unexpectedly'].join('\n');
    const err = classify(1, `${stderr}\n`);
    expect(err.code).toBe('CommandFailed');
    expect(err.permanent).toBe(false);
    expect(err.message).toContain('exit 1');
    expect(err.message).toContain('server closed the connection unexpectedly');
    expect(err.message).not.toContain('l1');
    expect(err.message).not.toContain('l2');
    expect(err.message).toContain('l3');
  });

  it('a signal-like exit code without a known message is CommandFailed', () => {
    expect(classify(137, '').code).toBe('CommandFailed');
  });
});
