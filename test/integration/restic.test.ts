// Repository storage (restic) end to end: real restic, a real Temporal worker, PostgreSQL and MinIO. One plan backs
// up to a local-path repository (with retention), an s3: repository on MinIO and a plain archive storage at once.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ResticStorage } from '../../src/config/schema';
import { fetchSnapshot, findSnapshots, type IgnoredRecord, type StoredRecord } from '../../src/restore/fetch';
import { generateSigningKey } from '../../src/snapshot/signing';
import type { BackupResult, RestoreInput, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { openRestic, type ResticSnapshot } from '../../src/storage/restic';
import { findRestic } from '../../src/storage/restic-run';
import type { ResticUploadResult } from '../../src/storage/restic-upload';
import { createBucket, historyText, psql, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const PASSWORD = `restic-pw-${randomBytes(9).toString('hex')}`;
const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('restic');
const site = join(root, 'site');
const localRepo = join(root, 'restic-repo');
const bucket = uniqueName('lbrestic').toLowerCase();
const db = uniqueName('lb_restic').replace(/-/g, '_');
const taskQueue = uniqueName('restic-it');
let t: TemporalFixture;
let configPath: string;
let config: { storages: Record<string, Record<string, unknown>> } & Record<string, unknown>;
let s3Repo: string;
const argvWatch = watchArgv(PASSWORD);
const signing = generateSigningKey();

const resticStorage = (repository: string, extra: Record<string, unknown> = {}) => ({ type: 'restic', repository, password: { file: join(root, 'restic-password') }, init: true, ...extra });

beforeAll(async () => {
  await mkdir(join(site, 'uploads'), { recursive: true });
  await writeFile(join(site, 'uploads/photo.bin'), randomBytes(3 * 1024 * 1024)); // incompressible: dedup, not zstd, must save it
  await writeFile(join(site, 'readme.txt'), 'hello\n');
  await symlink('readme.txt', join(site, 'README'));
  await psql(`CREATE DATABASE ${db}`);
  await psql(`CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 300) g;`, db);
  // Enough rows for a dump over 1 MiB: a restic storage stores it as a base and a patch (storage/restic-deltas.ts).
  await psql(`CREATE TABLE events (id int PRIMARY KEY, note text); INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, 40000) g;`, db);
  await writeFile(join(root, 'restic-password'), `${PASSWORD}\n`, { mode: 0o600 });
  await writeFile(join(root, 'wrong-password'), 'not-the-password\n', { mode: 0o600 });
  await writeFile(join(root, 'signing.key'), signing.privatePem, { mode: 0o600 });
  const m = inject('minio');
  await createBucket(bucket);
  process.env.LIFEBOAT_IT_RESTIC_S3_ACCESS = m.accessKey;
  process.env.LIFEBOAT_IT_RESTIC_S3_SECRET = m.secretKey;
  process.env.LIFEBOAT_IT_RESTIC_S3_WRONG = `${m.secretKey}-wrong`;
  s3Repo = `s3:${m.endpoint}/${bucket}/restic`;
  const s3Env = { AWS_ACCESS_KEY_ID: { env: 'LIFEBOAT_IT_RESTIC_S3_ACCESS' }, AWS_SECRET_ACCESS_KEY: { env: 'LIFEBOAT_IT_RESTIC_S3_SECRET' } };
  const source = (artifacts: unknown[]) => [{ name: 'app', host: 'local', artifacts }];
  const artifacts = [
    { type: 'postgres', name: 'orders', database: db, host: '127.0.0.1' },
    { type: 'files', name: 'site', paths: [site] },
  ];
  config = {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    signing: { key: { file: join(root, 'signing.key') }, publicKey: signing.publicKey },
    storages: {
      repo: resticStorage(localRepo, { retention: { last: 1 } }),
      s3repo: resticStorage(s3Repo, { env: s3Env }),
      archives: { type: 'local', path: join(root, 'archives') },
      solorepo: resticStorage(join(root, 'solo-repo')),
      // The repository exists (the first test made it): init: true must not matter, a wrong password is AuthFailed.
      badpw: resticStorage(localRepo, { password: { file: join(root, 'wrong-password') } }),
      norepo: resticStorage(join(root, 'no-such-repo'), { init: false }),
      bads3: resticStorage(s3Repo, { env: { ...s3Env, AWS_SECRET_ACCESS_KEY: { env: 'LIFEBOAT_IT_RESTIC_S3_WRONG' } } }),
    },
    plans: {
      shop: { storages: ['repo', 's3repo', 'archives'], verify: { postgres: { host: '127.0.0.1', port: 5432, user: 'lifeboat_drill' }, older: 0 }, sources: source(artifacts) },
      solo: { storages: ['solorepo'], sources: source(artifacts.slice(1)) },
      badpw: { storages: ['badpw'], sources: source([{ type: 'command', name: 'hello', command: ['echo', 'hi'] }]) },
      norepo: { storages: ['norepo'], sources: source([{ type: 'command', name: 'hello', command: ['echo', 'hi'] }]) },
      bads3: { storages: ['bads3'], sources: source([{ type: 'command', name: 'hello', command: ['echo', 'hi'] }]) },
    },
  };
  configPath = await writeConfig(root, config);
  t = await temporalFixture(configPath, taskQueue);
}, 170_000);

afterAll(async () => {
  argvWatch.stop();
  await t?.close();
  await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_copy`).catch(() => undefined);
});

/** restic itself, as a user would run it, with the password in its environment. */
async function resticSnapshots(repository: string, extraEnv: Record<string, string> = {}): Promise<ResticSnapshot[]> {
  const res = await execa(findRestic(), ['snapshots', '--json', '--no-lock'], { env: { RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: PASSWORD, ...extraEnv } });
  return JSON.parse(res.stdout) as ResticSnapshot[];
}
const s3Env = () => ({ AWS_ACCESS_KEY_ID: inject('minio').accessKey, AWS_SECRET_ACCESS_KEY: inject('minio').secretKey });
const dataSnapshots = (list: ResticSnapshot[]) => list.filter((s) => s.tags?.includes('lifeboat'));
const recordSnapshots = (list: ResticSnapshot[]) => list.filter((s) => s.tags?.includes('lifeboat-record'));

async function backup(plan: string): Promise<{ handle: WorkflowHandle; result: Promise<BackupResult> }> {
  const handle = await t.client.workflow.start('backupPlan', { taskQueue, workflowId: uniqueName(`restic-${plan}`), args: [{ plan, tier: 'daily' }] });
  return { handle, result: handle.result() as Promise<BackupResult> };
}
const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('restic-restore'), args: [{ plan: 'shop', snapshot: 'latest', force: false, dryRun: false, ...over }] });
const failureOf = async (p: Promise<unknown>) => {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
};
/** Highest attempt of an activity type in a run's history: 1 for a permanent failure. */
async function attemptsOf(handle: WorkflowHandle, activityType: string): Promise<number> {
  const scheduled = new Map<string, string>();
  let max = 0;
  for (const e of (await handle.fetchHistory()).events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
    const st = e.activityTaskStartedEventAttributes;
    if (st && scheduled.get(String(st.scheduledEventId)) === activityType) max = Math.max(max, st.attempt ?? 1);
  }
  return max;
}
const resticResult = (r: BackupResult, storage: string) => r.storages.find((s) => s.storage === storage) as ResticUploadResult;

describe('restic repository storage', () => {
  let first: BackupResult;
  let second: BackupResult;
  const histories: string[] = [];

  it('a backup becomes one restic snapshot of the snapshot directory, tagged, beside its record', async () => {
    const run = await backup('shop');
    first = await run.result;
    histories.push(await historyText(run.handle));
    const repo = resticResult(first, 'repo');
    expect(repo).toMatchObject({ type: 'restic', already_present: false, checksum_sha256: first.manifest.sha256 });
    const list = await resticSnapshots(localRepo);
    const data = dataSnapshots(list);
    expect(data).toHaveLength(1);
    expect(data[0]!.id).toBe(repo.restic.snapshot_id);
    expect(data[0]!.hostname).toBe('lifeboat');
    expect(data[0]!.tags?.sort()).toEqual([expect.stringMatching(/^deltas=1:-?\d+$/), 'lifeboat', 'lifeboat-record', 'plan=shop', `snapshot=${first.snapshot}`, 'tier=daily']); // deltas: the dump's pair
    expect(data[0]!.time.slice(0, 19)).toBe(first.created_at.slice(0, 19));
    expect(recordSnapshots(list).map((s) => s.id)).toEqual([data[0]!.id]); // the record travels inside the data snapshot
    // The tree holds the snapshot at its root, whatever backupRoot was.
    const ls = await execa(findRestic(), ['ls', '--json', '--no-lock', data[0]!.id], { env: { RESTIC_REPOSITORY: localRepo, RESTIC_PASSWORD: PASSWORD } });
    const paths = ls.stdout.split('\n').flatMap((l) => (l.includes('"struct_type":"node"') ? [(JSON.parse(l) as { path: string }).path] : []));
    expect(paths).toEqual(expect.arrayContaining(['/metadata.yml', '/manifest.sha256', `/${first.snapshot}.json`, `/files/app/site${site}/uploads/photo.bin`]));
    // The dump (over 1 MiB) went as a base and a patch, which a restore turns back into the dump.
    expect(paths).toEqual(expect.arrayContaining(['/database/orders.sql.lbbase', '/database/orders.sql.lbpatch']));
    expect(paths).not.toContain('/database/orders.sql');
    // The archive storage of the same plan got its archive as before.
    expect(first.storages.find((s) => s.storage === 'archives')).toMatchObject({ type: 'local', verified_by: 'file-sha256' });
  });

  it('an unchanged second backup adds (nearly) no data, and retention `last: 1` forgets and prunes the first', async () => {
    // A storage the plan no longer has left bases behind: the run's pruneLocal removes them, not the plan's own.
    await mkdir(join(root, 'backups', '.restic-deltas', 'oldstore', 'shop', 'bases'), { recursive: true });
    const run = await backup('shop');
    second = await run.result;
    histories.push(await historyText(run.handle));
    const added = { first: resticResult(first, 'repo').restic.data_added!, second: resticResult(second, 'repo').restic.data_added! };
    console.log(`restic data_added: first ${added.first} B, unchanged second ${added.second} B (${((100 * added.second) / added.first).toFixed(2)} %)`);
    expect(added.second).toBeLessThanOrEqual(added.first * 0.01);
    expect((await readdir(join(root, 'backups', '.restic-deltas'))).sort()).toEqual(['oldstore', 'repo', 's3repo']);
    expect(await readdir(join(root, 'backups', '.restic-deltas', 'oldstore'))).toEqual([]);
    expect(await readdir(join(root, 'backups', '.restic-deltas', 'repo', 'shop', 'bases'))).toEqual(['orders.sql', 'orders.sql.patch', 'orders.sql.state.json']);
    expect(second.retention?.find((r) => r.storage === 'repo')).toMatchObject({ configured: true, deleted: [first.snapshot], kept: 1 });
    const list = await resticSnapshots(localRepo);
    expect(dataSnapshots(list).map((s) => s.id)).toEqual([resticResult(second, 'repo').restic.snapshot_id]);
    expect(recordSnapshots(list).map((s) => s.tags?.find((x) => x.startsWith('snapshot=')))).toEqual([`snapshot=${second.snapshot}`]);
    // Pruned: the repository holds no data of the forgotten snapshot (its restic stats are those of one snapshot).
    const stats = await execa(findRestic(), ['stats', '--json', '--no-lock', '--mode', 'raw-data'], { env: { RESTIC_REPOSITORY: localRepo, RESTIC_PASSWORD: PASSWORD } });
    expect((JSON.parse(stats.stdout) as { snapshots_count: number }).snapshots_count).toBe(1); // the data, its record inside
    // The S3 repository has no retention: it keeps both.
    expect(dataSnapshots(await resticSnapshots(s3Repo, s3Env()))).toHaveLength(2);
  });

  it('restores from the local repository into a new database and a directory, round-tripping', async () => {
    const dir = join(root, 'restored');
    const res = await restore({ storage: 'repo', source: 'app', database: `${db}_copy`, dir });
    expect(res.snapshot).toBe(second.snapshot);
    expect(res.restored.map((r) => r.artifact).sort()).toEqual(['orders', 'site']);
    expect(await psql("SELECT count(*) || ':' || sum(total) FROM orders", `${db}_copy`)).toBe('300:67725.0');
    expect(await psql('SELECT count(*) FROM events', `${db}_copy`)).toBe('40000');
    await execa('diff', ['-r', '--no-dereference', site, join(dir, site.slice(1))]);
    expect(await readdir(join(root, 'backups', '.restore')).catch(() => [])).toEqual([]);
  });

  it('restores one artifact from the S3 (MinIO) repository, reading only its files', async () => {
    const dir = join(root, 'from-s3');
    await restore({ storage: 's3repo', snapshot: first.snapshot, artifact: 'site', pathPrefix: join(site, 'uploads'), dir });
    expect((await readFile(join(dir, site.slice(1), 'uploads/photo.bin'))).equals(await readFile(join(site, 'uploads/photo.bin')))).toBe(true);
    await expect(readFile(join(dir, site.slice(1), 'readme.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    // What the restore read: the selected paths, metadata.yml and the manifest, nothing else (checked as restored).
    const backend = await openRestic('s3repo', ResticStorage.parse(resticStorage(s3Repo, { env: { AWS_ACCESS_KEY_ID: { env: 'LIFEBOAT_IT_RESTIC_S3_ACCESS' }, AWS_SECRET_ACCESS_KEY: { env: 'LIFEBOAT_IT_RESTIC_S3_SECRET' } } })));
    const workDir = join(root, 'select-work');
    const fetched = await fetchSnapshot({ storage: backend, plan: 'shop', snapshot: first.snapshot, workDir, select: [`files/app/site${site}/uploads`] });
    expect((await readdir(fetched.dir)).sort()).toEqual(['files', 'manifest.sha256', 'metadata.yml']);
    expect(fetched.record.restic?.snapshot_id).toBe(resticResult(first, 's3repo').restic.snapshot_id);
    await rm(workDir, { recursive: true, force: true });
  });

  it('the drill passes on the restic snapshot and includes the repository check', async () => {
    const [result] = (await t.client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('restic-verify'), args: [{ plan: 'shop', storage: 'repo' }] })) as SnapshotVerification[];
    expect(result!.snapshot).toBe(second.snapshot);
    expect(result!.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result!.checks.find((c) => c.check === 'repository')).toMatchObject({ ok: true, detail: expect.stringContaining('--read-data-subset=5%') });
    expect(result!.checks.map((c) => c.artifact)).toEqual(expect.arrayContaining(['orders', 'site']));
    expect(await readdir(join(root, 'backups', '.verify')).catch(() => [])).toEqual([]);
    // The drill's result went into the record: a record-only snapshot, newer than the one inside the data.
    const cli = await execa('node', [LIFEBOAT_BIN, '-c', configPath, 'snapshots', 'list', '--storage', 'repo', '--json']);
    const [listed] = JSON.parse(cli.stdout) as Array<{ snapshot: string; verification?: { ok: boolean }; restic?: { snapshot_id: string } }>;
    expect(listed).toMatchObject({ snapshot: second.snapshot, verification: { ok: true }, restic: { snapshot_id: resticResult(second, 'repo').restic.snapshot_id } });
    const records = recordSnapshots(await resticSnapshots(localRepo));
    expect(records.map((s) => s.tags?.includes('lifeboat'))).toEqual([true, false]);
  });

  it('snapshots fetch restores and checks the directory from a restic storage', async () => {
    const to = join(root, 'fetched');
    const res = await execa('node', [LIFEBOAT_BIN, '-c', configPath, 'snapshots', 'fetch', 'latest', '--plan', 'shop', '--storage', 'repo', '--to', to]);
    expect(res.stdout).toContain('every manifest line matches');
    expect((await readdir(to)).sort()).toEqual([second.snapshot, `${second.snapshot}.json`].sort());
    expect(await readFile(join(to, second.snapshot, `files/app/site${site}/readme.txt`), 'utf8')).toBe('hello\n');
    expect(await readdir(join(to, second.snapshot))).not.toContain(`${second.snapshot}.json`); // the record stays in restic
  });

  it('records are signed as for archives: a changed record is ignored by listing and refused by name', async () => {
    const backend = await openRestic('repo', ResticStorage.parse(resticStorage(localRepo)));
    const key = `shop/${second.snapshot}.json`;
    const good = (await backend.getJson<StoredRecord>(key))!;
    expect(good.signature?.alg).toBe('ed25519');
    const trust = { publicKey: signing.publicKey };
    expect((await findSnapshots({ repo: backend }, { plan: 'shop', trust })).map((l) => l.record.snapshot)).toEqual([second.snapshot]);
    await backend.putJson(key, { ...good, hold: { until: '2999-01-01T00:00:00Z' } }); // whoever holds the password, not the signing key
    const ignored: IgnoredRecord[] = [];
    expect(await findSnapshots({ repo: backend }, { plan: 'shop', trust, onIgnored: (i) => ignored.push(i) })).toEqual([]);
    expect(ignored).toEqual([{ storage: 'repo', key, reason: 'has an invalid signature' }]);
    const refused = await fetchSnapshot({ storage: backend, plan: 'shop', snapshot: second.snapshot, workDir: join(root, 'forged-work'), trust }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'SignatureInvalid' });
    await backend.putJson(key, good);
    expect(await findSnapshots({ repo: backend }, { plan: 'shop', trust })).toHaveLength(1);
  });

  it('damage in the repository fails the drill\'s repository check, and a restore of damaged data is ChecksumMismatch', async () => {
    const env = { RESTIC_REPOSITORY: localRepo, RESTIC_PASSWORD: PASSWORD };
    const packs = async () => (await execa('find', [join(localRepo, 'data'), '-type', 'f'])).stdout.split('\n').filter(Boolean);
    // Somebody else's snapshot in the same repository (its own packs: random bytes share nothing with ours), damaged.
    const foreign = join(root, 'foreign');
    await mkdir(foreign, { recursive: true });
    await writeFile(join(foreign, 'blob'), randomBytes(256 * 1024));
    const before = new Set(await packs());
    await execa(findRestic(), ['backup', '-q', '--tag', 'other', foreign], { env });
    const theirs = (await packs()).filter((p) => !before.has(p));
    expect(theirs.length).toBeGreaterThan(0);
    for (const p of theirs) await flipByte(p);
    // The drill reads every pack this time (the worker reads lifeboat.yaml on every run).
    config.storages.repo = { ...config.storages.repo, checkReadDataPercent: 100 };
    await writeConfig(root, config);
    const failed = await failureOf(t.client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('restic-verify-damaged'), args: [{ plan: 'shop', storage: 'repo' }] }));
    expect(failed.type).toBe('VerificationFailed');
    expect(failed.message).toMatch(/\*: repository: restic check --read-data-subset=100%: \d+ error\(s\); damaged packs/);
    const [drill] = failed.details?.[0] as SnapshotVerification[];
    expect(drill!.checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['repository']); // our own snapshot still restores and checks out
    // Now our own data: a restore must refuse it, permanently.
    for (const p of before) await flipByte(p);
    const restoreFailure = await failureOf(restore({ storage: 'repo', source: 'app', dir: join(root, 'never'), database: `${db}_never`, dryRun: true }));
    expect(restoreFailure.type).toBe('ChecksumMismatch');
  });

  it('a wrong password fails preflight as AuthFailed, at once; a missing repository without init is a ConfigError', async () => {
    const run = await backup('badpw');
    const wrong = await failureOf(run.result);
    expect(wrong.type).toBe('AuthFailed');
    expect(wrong.message).toMatch(/wrong restic repository password/);
    expect(await attemptsOf(run.handle, 'preflight')).toBe(1);
    const missing = await failureOf((await backup('norepo')).result);
    expect(missing.type).toBe('ConfigError');
    expect(missing.message).toMatch(/no restic repository.*init: true/s);
    const s3run = await backup('bads3');
    const badSecret = await failureOf(s3run.result);
    expect(badSecret.type).toBe('AuthFailed');
    expect(await attemptsOf(s3run.handle, 'preflight')).toBe(1);
  });

  it('a plan whose storages are all repositories builds no archive, and restores from the repository', async () => {
    const r = await (await backup('solo')).result;
    expect(r).toMatchObject({ status: 'Completed', size_bytes: 0, checksum_sha256: r.manifest.sha256 });
    expect((await readdir(join(root, 'backups'))).filter((f) => f.startsWith(`${r.snapshot}.tar`))).toEqual([]);
    const toDir = join(root, 'solo-restored');
    await t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('restic-solo'), args: [{ plan: 'solo', snapshot: 'latest', force: false, dryRun: false, dir: toDir, quiesce: false }] });
    expect(await readFile(join(toDir, site, 'readme.txt'), 'utf8')).toBe(await readFile(join(site, 'readme.txt'), 'utf8'));
  });

  it('the password is never in workflow history nor on any command line', () => {
    expect(histories).toHaveLength(2);
    for (const h of histories) {
      expect(h).not.toContain(PASSWORD);
      expect(h).not.toContain(inject('minio').secretKey);
    }
    expect(argvWatch.seen()).toBeGreaterThan(0); // the watcher did see restic run
    expect(argvWatch.leaks()).toEqual([]);
  });
});

/** Flips one byte in the middle of a file, as a failing disk or a bucket writer would. */
async function flipByte(path: string): Promise<void> {
  const body = await readFile(path);
  const at = Math.floor(body.length / 2);
  body[at] = body[at]! ^ 0x01;
  await chmod(path, 0o600);
  await writeFile(path, body);
}

/** Samples every process's argv (/proc/<pid>/cmdline) while the tests run: restic's, and any containing `secret`. */
function watchArgv(secret: string) {
  const leaks = new Set<string>();
  let resticSeen = 0;
  const timer = setInterval(() => {
    void (async () => {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (argv.includes(secret)) leaks.add(argv.replace(/\0/g, ' '));
        if (/restic\0/.test(argv)) resticSeen++;
      }
    })();
  }, 25);
  return { stop: () => clearInterval(timer), leaks: () => [...leaks], seen: () => resticSeen };
}
