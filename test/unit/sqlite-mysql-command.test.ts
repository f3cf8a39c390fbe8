import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CommandArtifact, MysqlArtifact, SqliteArtifact } from '../../src/config/schema';
import type { ExecOptions, Host } from '../../src/remote/host';
import { LifeboatError } from '../../src/shared/errors';
import { classifyCommandFailure, command, commandFileName } from '../../src/sources/command';
import {
  MYCNF_ENV,
  MYSQL_SCRIPT,
  SIZE_SQL,
  classifyMysqlFailure,
  mysql,
  mysqlDumpArgv,
  mysqlFileName,
  mysqlSizeArgv,
  optionFile,
  optionFileValue,
  toolUsed,
} from '../../src/sources/mysql';
import {
  SQLITE_CAPTURE_SCRIPT,
  SQLITE_MISSING_EXIT,
  classifySqliteFailure,
  copyStatement,
  immutableUri,
  quoteIdent,
  sqlite,
  sqliteCaptureArgv,
  sqliteFileName,
} from '../../src/sources/sqlite';

const NASTY = `x'; rm -rf / #" $(touch /tmp/pwned) \`id\` \\ ; *`;
const mysqlArtifact = (over: Record<string, unknown> = {}) => MysqlArtifact.parse({ name: 'shop', type: 'mysql', database: 'shop', ...over });
const sqliteArtifact = (over: Record<string, unknown> = {}) => SqliteArtifact.parse({ name: 'app', type: 'sqlite', path: '/srv/app/db.sqlite', ...over });
const commandArtifact = (argv: string[]) => CommandArtifact.parse({ name: 'ps', type: 'command', command: argv });
const scratch = await mkdtemp(join(tmpdir(), 'lifeboat-unit-sqlmc-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));
const printer = await which('my_print_defaults');

function fakeHost(answer = { exitCode: 0, stdout: '4096\n', stderr: '' }) {
  const calls: { argv: string[]; opts?: ExecOptions }[] = [];
  const host: Host = {
    label: 'fake',
    async exec(argv, opts) {
      calls.push({ argv, opts });
      return answer;
    },
    rsyncTarget: () => ({ prefix: '' }),
    close: () => {},
  };
  return { host, calls };
}

const signal = new AbortController().signal;
const codeOf = (e: unknown) => (e as LifeboatError).code;

describe('mysql option file', () => {
  it('double-quotes values and escapes \\ " and control characters', () => {
    expect(optionFileValue('plain')).toBe('"plain"');
    expect(optionFileValue('a"b')).toBe('"a\\"b"');
    expect(optionFileValue('a\\b')).toBe('"a\\\\b"');
    expect(optionFileValue('l1\nl2\tx\r')).toBe('"l1\\nl2\\tx\\r"');
    expect(optionFile('u', 'p')).toBe('[client]\nuser="u"\npassword="p"\n');
  });

  const passwords = [
    '',
    'p"w\\d:x',
    NASTY,
    'trailing\\',
    '\\"',
    '"quoted"',
    "'single'",
    ' spaced ',
    'hash # not a comment',
    '\\n is not a newline',
    '\\s\\t\\b',
    'two\nlines\tand\rcr',
    'ünï 🚀',
    '!include /etc/passwd',
  ];

  it.skipIf(!printer)('round-trips through the real my_print_defaults', async () => {
    for (const [i, pw] of passwords.entries()) {
      const user = i % 2 ? `u"${i}\\` : 'backup';
      const file = join(scratch, `opt-${i}.cnf`);
      await writeFile(file, optionFile(user, pw), { mode: 0o600 });
      const res = await execa(printer!, [`--defaults-file=${file}`, 'client'], { stripFinalNewline: false });
      expect(res.stdout, JSON.stringify(pw)).toBe(`--user=${user}\n--password=${pw}\n`);
    }
  });
});

describe('mysql argv', () => {
  it('runs the constant script with config values only as separate argv elements', () => {
    const a = mysqlArtifact({ database: NASTY, user: NASTY, host: NASTY, port: 3307 });
    const argv = mysqlDumpArgv(a);
    expect(argv.slice(0, 3)).toEqual(['sh', '-c', MYSQL_SCRIPT]);
    expect(argv.slice(3)).toEqual([
      'lifeboat-mysql',
      'mariadb-dump',
      'mysqldump',
      '--single-transaction',
      '--routines',
      '--events',
      '--triggers',
      '--no-tablespaces',
      `--user=${NASTY}`,
      `--host=${NASTY}`,
      '--port=3307',
      '--databases',
      '--',
      NASTY,
    ]);
  });

  it('the option file is the first option of the program the script execs', () => {
    expect(MYSQL_SCRIPT).toContain(`exec "$t" --defaults-extra-file="$${MYCNF_ENV}" "$@"`);
  });

  it('the size query names the database only through --database', () => {
    const argv = mysqlSizeArgv(mysqlArtifact({ database: NASTY }));
    expect(argv.slice(3, 6)).toEqual(['lifeboat-mysql', 'mariadb', 'mysql']);
    expect(argv).toContain(`--database=${NASTY}`);
    expect(argv.at(-1)).toBe(SIZE_SQL);
    expect(SIZE_SQL).not.toContain(NASTY);
  });

  it('inside a compose service the same script runs through docker compose exec -T', () => {
    const a = mysqlArtifact({ compose: { projectDir: '/srv/shop', service: 'db', files: ['compose.yml'] } });
    const argv = mysqlDumpArgv(a);
    expect(argv.slice(0, 10)).toEqual(['docker', 'compose', '--project-directory', '/srv/shop', '-f', 'compose.yml', 'exec', '-T', 'db', 'sh']);
    expect(argv.slice(9)).toEqual(mysqlDumpArgv(mysqlArtifact()));
    expect(mysql.requiredTools(a)).toEqual(['docker']);
  });

  it('file name', () => {
    expect(mysqlFileName(mysqlArtifact())).toBe('database/shop.sql');
  });

  it('the picked tool is read back from the script’s own stderr line', () => {
    expect(toolUsed('lifeboat: running mysqldump\nwarning\n')).toBe('mysqldump');
    expect(toolUsed('nothing')).toBeUndefined();
  });
});

describe('mysql password handover', () => {
  const ENV = 'LIFEBOAT_UNIT_TEST_MYPASS';
  afterEach(() => {
    delete process.env[ENV];
  });

  it('hands the password over as an option file in LIFEBOAT_MYCNF, never in the argv', async () => {
    process.env[ENV] = 'p"w\\d:x';
    const { host, calls } = fakeHost();
    expect(await mysql.estimateBytes(host, mysqlArtifact({ user: 'backup', password: { env: ENV } }), signal)).toBe(4096);
    expect(calls[0]!.opts?.secretFile).toEqual({ env: MYCNF_ENV, content: optionFile('backup', 'p"w\\d:x') });
    expect(calls[0]!.argv.join('\0')).not.toContain('p"w');
  });

  it('no password, no option file', async () => {
    const { host, calls } = fakeHost();
    await mysql.estimateBytes(host, mysqlArtifact(), signal);
    expect(calls[0]!.opts?.secretFile).toBeUndefined();
  });

  it('a NUL byte in the password is a ConfigError and nothing runs', async () => {
    const file = join(scratch, 'nul-password'); // an environment variable cannot hold NUL
    await writeFile(file, 'a\0b');
    const { host, calls } = fakeHost();
    expect(codeOf(await mysql.estimateBytes(host, mysqlArtifact({ password: { file } }), signal).catch((e: unknown) => e))).toBe('ConfigError');
    expect(calls).toEqual([]);
  });
});

describe('classifyMysqlFailure', () => {
  const c = (exit: number, stderr: string) => classifyMysqlFailure('db1', mysqlArtifact(), exit, stderr) as LifeboatError;
  it('maps errors to codes', () => {
    expect(c(2, "mariadb-dump: Got error: 1045: \"Access denied for user 'x'@'localhost' (using password: YES)\"").code).toBe('AuthFailed');
    expect(c(2, 'mariadb-dump: backup has insufficient privileges to SHOW CREATE PROCEDURE `item_count`!').code).toBe('AuthFailed');
    expect(c(2, 'mariadb-dump: Got error: 1049: "Unknown database \'shop\'" when selecting the database').code).toBe('ConfigError');
    expect(c(127, 'lifeboat: neither mariadb-dump nor mysqldump is installed').code).toBe('MissingTool');
    const other = c(2, 'lifeboat: running mariadb-dump\nGot error: 2002: Can\'t connect');
    expect(other.code).toBe('CommandFailed');
    expect(other.permanent).toBe(false);
    expect(other.message).not.toContain('lifeboat: running');
  });
});

describe('sqlite argv', () => {
  it('runs the constant script; path, timeout, statement, marker and kept state are separate argv elements', () => {
    const argv = sqliteCaptureArgv(sqliteArtifact({ path: `/srv/${NASTY}.db`, busyTimeoutSeconds: 7 }), 'lifeboat-sqlite-00', NASTY);
    expect(argv).toEqual(['sh', '-c', SQLITE_CAPTURE_SCRIPT, 'lifeboat-sqlite', `/srv/${NASTY}.db`, '7000', "VACUUM INTO 'copy.sqlite'", 'lifeboat-sqlite-00', NASTY]);
  });

  it('copy statements are constants writing into the private temp dir', () => {
    expect(copyStatement('vacuum')).toBe("VACUUM INTO 'copy.sqlite'");
    expect(copyStatement('backup')).toBe(".backup 'copy.sqlite'");
    expect(sqliteCaptureArgv(sqliteArtifact({ method: 'backup' }))[6]).toBe(".backup 'copy.sqlite'");
  });

  it('the script opens the database read-only and cleans up on exit and signals', () => {
    expect(SQLITE_CAPTURE_SCRIPT).toContain('sqlite3 -readonly "$1"');
    expect(SQLITE_CAPTURE_SCRIPT).toContain('trap cleanup EXIT');
    expect(SQLITE_CAPTURE_SCRIPT).toMatch(/trap .* HUP INT TERM/);
  });

  it('a path full of shell syntax is not evaluated: a missing file exits 66 and nothing is created', async () => {
    const dir = join(scratch, 'nasty');
    const path = `${dir}/$(touch ${dir}-pwned)'; touch ${dir}-pwned2; '.db`;
    const res = await execa('sh', sqliteCaptureArgv(sqliteArtifact({ path })).slice(1), { reject: false });
    expect(res.exitCode).toBe(SQLITE_MISSING_EXIT);
    expect(res.stderr).toContain(path);
    expect(await execa('ls', [scratch]).then((r) => r.stdout)).not.toContain('pwned');
  });

  it('file name, required tools and paths', () => {
    const a = sqliteArtifact();
    expect(sqliteFileName(a)).toBe('database/app.sqlite');
    expect(sqlite.requiredTools(a)).toEqual(['sqlite3']);
    expect(sqlite.requiredPaths(a)).toEqual(['/srv/app/db.sqlite']);
  });

  it('estimateBytes sums the sizes printed by the constant stat script', async () => {
    const { host, calls } = fakeHost({ exitCode: 0, stdout: '8192\n4096\n', stderr: '' });
    expect(await sqlite.estimateBytes(host, sqliteArtifact({ path: `/x/${NASTY}` }), signal)).toBe(12288);
    expect(calls[0]!.argv.at(-1)).toBe(`/x/${NASTY}`);
    expect(calls[0]!.argv[2]).not.toContain(NASTY);
  });
});

describe('sqlite helpers', () => {
  it('quoteIdent doubles embedded double quotes', () => {
    expect(quoteIdent('t')).toBe('"t"');
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(quoteIdent('a"";--')).toBe('"a"""";--"');
  });

  it('immutableUri percent-encodes the characters a URI would misread', () => {
    expect(immutableUri('/b/db.sqlite.partial')).toBe('file:/b/db.sqlite.partial?immutable=1');
    expect(immutableUri('/b/50%?#x')).toBe('file:/b/50%25%3f%23x?immutable=1');
  });

  it('classifySqliteFailure', () => {
    const c = (exit: number, stderr: string) => classifySqliteFailure('app', sqliteArtifact(), exit, stderr) as LifeboatError;
    expect(c(66, 'lifeboat: no such database file').code).toBe('MissingPath');
    expect(c(127, 'sh: 1: sqlite3: not found').code).toBe('MissingTool');
    expect(c(26, 'Error: stepping, file is not a database (26)').code).toBe('IntegrityCheckFailed');
    expect(c(5, 'Error: stepping, database is locked (5)').code).toBe('CommandFailed');
    expect(c(8, 'Error: stepping, attempt to write a readonly database (8)').message).toContain('hot journal');
    expect(c(1, 'Error: near "INTO": syntax error').message).toContain('method: backup');
  });
});

describe('command', () => {
  it('a bare program is a required tool, a path is a required path', () => {
    expect(command.requiredTools(commandArtifact(['docker', 'ps']))).toEqual(['docker']);
    expect(command.requiredPaths(commandArtifact(['docker', 'ps']))).toEqual([]);
    expect(command.requiredTools(commandArtifact(['/opt/app/bin/list']))).toEqual([]);
    expect(command.requiredPaths(commandArtifact(['/opt/app/bin/list']))).toEqual(['/opt/app/bin/list']);
  });

  it('file name', () => {
    expect(commandFileName(commandArtifact(['true']))).toBe('commands/ps.txt');
  });

  it('exit 127 → MissingTool, other exits → CommandFailed with the stderr tail', () => {
    const a = commandArtifact(['docker', 'ps']);
    expect(codeOf(classifyCommandFailure('h', a, 127, 'sh: docker: not found'))).toBe('MissingTool');
    const err = classifyCommandFailure('h', a, 1, `${'noise\n'.repeat(50)}Cannot connect to the Docker daemon`) as LifeboatError;
    expect(err.code).toBe('CommandFailed');
    expect(err.message).toContain('Cannot connect to the Docker daemon');
    expect(err.message.split('\n').length).toBeLessThan(15);
  });
});

async function which(program: string): Promise<string | undefined> {
  const res = await execa('sh', ['-c', 'command -v "$1"', 'which', program], { reject: false });
  return res.exitCode === 0 ? res.stdout.trim() : undefined;
}
