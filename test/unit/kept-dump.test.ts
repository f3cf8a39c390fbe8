// Kept dumps (kept-dump.ts) and the unchanged-dump scripts without a database: the scripts with the local sh
// (LocalHost), what is read back from their stderr, and what a mirror's state file may say before its dump is
// reused. Against real servers over sshd: test/integration/pg-unchanged.test.ts, sqlite-unchanged.test.ts.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalHost } from '../../src/remote/local';
import { keepDump, keptDump, readOutcome } from '../../src/sources/kept-dump';
import { dumpUnlessUnchanged } from '../../src/sources/pg-unchanged';
import { keepableState } from '../../src/sources/sqlite';
import { tempDir } from '../support/fixtures';

const host = new LocalHost('here');
const run = (state: string[], dump: string[], kept?: string) => {
  const cmd = dumpUnlessUnchanged(state, dump, kept);
  return host.exec(cmd.argv).then((r) => ({ ...r, ...readOutcome(r.stderr, cmd.marker) }));
};

describe('dumpUnlessUnchanged', () => {
  const dump = ['printf', '%s|', 'a b', "it's", '$(touch /tmp/lifeboat-never)', '`x`', ''];

  it('dumps with every argument intact when the state differs, and reports the state', async () => {
    const r = await run(['echo', 'sys:1:0/16'], dump, 'sys:1:0/15');
    expect(r).toMatchObject({ exitCode: 0, stdout: "a b|it's|$(touch /tmp/lifeboat-never)|`x`||", state: 'sys:1:0/16', unchanged: false, stderr: '' });
  });

  it('does not run the dump when the state equals the kept one', async () => {
    const r = await run(['printf', '%s\\n', 'sys:1:0/16'], ['sh', '-c', 'echo dumped; echo oops >&2'], 'sys:1:0/16');
    expect(r).toMatchObject({ exitCode: 0, stdout: '', state: 'sys:1:0/16', unchanged: true, stderr: '' });
  });

  it('dumps when the state cannot be read or is empty, even with nothing kept to compare', async () => {
    expect(await run(['false'], ['echo', 'dumped'], '')).toMatchObject({ stdout: 'dumped\n', state: '', unchanged: false });
    expect(await run(['printf', ''], ['echo', 'dumped'], '')).toMatchObject({ stdout: 'dumped\n', state: '', unchanged: false });
    expect(await run(['no-such-psql-lifeboat'], ['echo', 'dumped'])).toMatchObject({ stdout: 'dumped\n', unchanged: false });
  });

  it('passes the dump\'s exit code and stderr through', async () => {
    const r = await run(['echo', 's'], ['sh', '-c', 'echo "pg_dump: error: connection refused" >&2; exit 1'], 'other');
    expect(r).toMatchObject({ exitCode: 1, unchanged: false, stderr: 'pg_dump: error: connection refused\n' });
  });
});

describe('readOutcome', () => {
  it('takes only lines that start with this run\'s marker', () => {
    const r = readOutcome('lifeboat-pg-aa state s1\nlifeboat-pg-bb unchanged\nwarning\n', 'lifeboat-pg-aa');
    expect(r).toEqual({ state: 's1', unchanged: false, stderr: 'lifeboat-pg-bb unchanged\nwarning\n' });
  });
});

describe('keptDump', () => {
  const setUp = async () => {
    const mirror = await tempDir('pg-kept');
    await mkdir(join(mirror, 'database'));
    await writeFile(join(mirror, 'database/app.sql'), 'dump v1');
    const captured = { paths: ['database/app.sql'], bytes: 7, details: { format: 'plain' } };
    await keepDump(mirror, join(mirror, 'snapshot'), { fingerprint: 'f1', state: 's1', dumpedIn: 'app-20261205T000000', captured });
    return mirror;
  };

  it('returns what was kept for the same commands while the files are the ones written', async () => {
    const mirror = await setUp();
    expect(await keptDump(mirror, 'f1')).toMatchObject({ state: 's1', dumpedIn: 'app-20261205T000000', captured: { bytes: 7 } });
    expect(await keptDump(mirror, 'f2')).toBeUndefined(); // other format, user, globals …
  });

  it('refuses a dump file that was replaced or rewritten since', async () => {
    const mirror = await setUp();
    await writeFile(join(mirror, 'database/other'), 'dump v2');
    await rename(join(mirror, 'database/other'), join(mirror, 'database/app.sql'));
    expect(await keptDump(mirror, 'f1')).toBeUndefined();
  });

  it('refuses a state file that names paths outside the mirror\'s dumps, or is not JSON', async () => {
    const mirror = await setUp();
    for (const path of ['../../etc/passwd', '/etc/passwd', 'database/../x', 'database/a/b']) {
      await writeFile(join(mirror, 'dump-state.json'), JSON.stringify({ version: 1, fingerprint: 'f1', state: 's1', dumpedIn: 'x', files: [{ path, identity: 'x' }], captured: { paths: [path], bytes: 0, details: {} } }));
      expect(await keptDump(mirror, 'f1')).toBeUndefined();
    }
    await writeFile(join(mirror, 'dump-state.json'), '{');
    expect(await keptDump(mirror, 'f1')).toBeUndefined();
  });

  it('reports only the fields a capture reports, whatever else the state file holds', async () => {
    const mirror = await setUp();
    const text = JSON.parse(await readFile(join(mirror, 'dump-state.json'), 'utf8'));
    await writeFile(join(mirror, 'dump-state.json'), JSON.stringify({ ...text, captured: { ...text.captured, status: 'skipped', error: 'x' } }));
    expect((await keptDump(mirror, 'f1'))!.captured).toEqual({ paths: ['database/app.sql'], bytes: 7, details: { format: 'plain' } });
    await writeFile(join(mirror, 'dump-state.json'), JSON.stringify({ ...text, captured: { ...text.captured, bytes: '7' } }));
    expect(await keptDump(mirror, 'f1')).toBeUndefined();
  });

  it('records nothing for an empty state (a standby, unlogged tables): it would never compare equal', async () => {
    const mirror = await tempDir('pg-kept-empty');
    await keepDump(mirror, join(mirror, 'snapshot'), { fingerprint: 'f1', state: '', dumpedIn: 'x', captured: { paths: [], bytes: 0, details: {} } });
    expect(await keptDump(mirror, 'f1')).toBeUndefined();
  });
});

describe('keepableState (sqlite)', () => {
  it('keeps only the state it expects: database, -wal, -journal (each stat line or "-"), the -shm header or "-"', () => {
    const f = '65024:9977915:8192:1796509745.777567044:1796509745.777567044';
    const shm = 'a'.repeat(96);
    expect(keepableState(`${f} ${f} - ${shm}`)).toBe(`${f} ${f} - ${shm}`);
    expect(keepableState(` ${f} - ${f} - `)).toBe(`${f} - ${f} -`);
    for (const bad of ['', '- - - -', `${f} - -`, `${f} - - ?`, `${f} - - ${'a'.repeat(95)}`, '%d:%i:%s:%.9Y:%.9Z - - -', '65024:9977915:8192:1796509745:1796509745 - - -', `${f} ${f} ${f} ${f} -`]) {
      expect(keepableState(bad)).toBe('');
    }
  });
});
