import { describe, it, expect, afterEach } from 'vitest';
import { PostgresArtifact } from '../../src/config/schema';
import type { ExecOptions, Host } from '../../src/remote/host';
import { pgDumpArgv, pgCommand, passfileLine, dumpFileName, classifyPgFailure, postgres } from '../../src/sources/postgres';
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

  it('without runAs returns the argv unchanged', () => {
    expect(pgCommand(artifact(), dump)).toEqual(dump);
  });

  it('a configured password does not wrap the argv: the secret is handed over by the host (remote-command.ts)', () => {
    const a = artifact({ password: { env: 'X' } });
    expect(pgCommand(a, pgDumpArgv(a))).toEqual(pgDumpArgv(a));
  });

  it('runAs prefixes sudo -n -u <user> --', () => {
    expect(pgCommand(artifact({ runAs: 'postgres' }), dump)).toEqual(['sudo', '-n', '-u', 'postgres', '--', ...dump]);
  });

  it('the password never appears in the argv', () => {
    const a = artifact({ host: 'h', port: 5432, password: { env: 'X' } });
    const joined = pgCommand(a, pgDumpArgv(a)).join('\0');
    expect(joined).not.toContain(PASSWORD);
    expect(joined).not.toContain('hunter2');
    expect(joined).not.toContain(passfileLine(PASSWORD).trim());
  });
});

describe('PostgresArtifact schema', () => {
  it('refuses runAs together with password', () => {
    const res = PostgresArtifact.safeParse({ name: 'appdb', type: 'postgres', database: 'app', runAs: 'pg', password: { env: 'X' } });
    expect(res.success).toBe(false);
    expect(res.error?.issues).toEqual([expect.objectContaining({ path: ['runAs'], message: 'use either runAs (peer authentication) or password, not both' })]);
  });

  it('accepts runAs alone and password alone', () => {
    expect(artifact({ runAs: 'pg' }).runAs).toBe('pg');
    expect(artifact({ password: { env: 'X' } }).password).toEqual({ env: 'X' });
  });
});

describe('postgres source: how the password reaches the host', () => {
  const ENV = 'LIFEBOAT_UNIT_TEST_PGPASS';
  afterEach(() => {
    delete process.env[ENV];
  });

  /** A Host that records exec calls and answers like psql printing a database size. */
  function fakeHost() {
    const calls: { argv: string[]; opts?: ExecOptions }[] = [];
    const host: Host = {
      label: 'fake',
      async exec(argv, opts) {
        calls.push({ argv, opts });
        return { exitCode: 0, stdout: '12345\n', stderr: '' };
      },
      rsyncTarget: () => ({ prefix: '' }),
      close: () => {},
    };
    return { host, calls };
  }

  it('hands the resolved password over as a PGPASSFILE secret file, never in the argv', async () => {
    process.env[ENV] = PASSWORD;
    const { host, calls } = fakeHost();
    expect(await postgres.estimateBytes(host, artifact({ password: { env: ENV } }), new AbortController().signal)).toBe(12345);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.opts?.secretFile).toEqual({ env: 'PGPASSFILE', content: passfileLine(PASSWORD) });
    expect(calls[0]!.argv.join('\0')).not.toContain('hunter2');
  });

  it('without a password no secret file is handed over', async () => {
    const { host, calls } = fakeHost();
    await postgres.estimateBytes(host, artifact({ runAs: 'postgres' }), new AbortController().signal);
    expect(calls[0]!.opts?.secretFile).toBeUndefined();
    expect(calls[0]!.argv.slice(0, 5)).toEqual(['sudo', '-n', '-u', 'postgres', '--']);
  });

  it('a password with a line break is a ConfigError (a passfile line cannot hold it) and nothing runs', async () => {
    for (const pw of ['two\nlines', 'cr\rhere']) {
      process.env[ENV] = pw;
      const { host, calls } = fakeHost();
      const err = await postgres.estimateBytes(host, artifact({ password: { env: ENV } }), new AbortController().signal).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LifeboatError);
      expect((err as LifeboatError).code).toBe('ConfigError');
      expect((err as LifeboatError).message).toContain('line break');
      expect((err as LifeboatError).message).not.toContain(pw);
      expect(calls).toEqual([]);
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
