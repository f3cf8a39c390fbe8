// Everything in a snapshot is untrusted input, metadata.yml included (issue "trust", item 3): a forger who can write
// to storage makes every checksum consistent, so only what restore and the drill do with the content protects the
// hosts. Real Temporal, PostgreSQL (the drill as lifeboat_drill, see global-setup.ts), an OpenSSH host, local
// storage; MariaDB, sqlite3 and Redis through the restore modules directly.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { FilesArtifact, MysqlArtifact, PostgresArtifact, RedisArtifact, SqliteArtifact, type Artifact } from '../../src/config/schema';
import { LocalHost } from '../../src/remote/local';
import type { BackupResult, RestoreInput, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { createArchive } from '../../src/snapshot/archive';
import { buildManifest } from '../../src/snapshot/manifest';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { restoreModule } from '../../src/sources/restore';
import type { RecordedComponent, RestoreModule, RestoreOptions, ScratchServers, VerifyCheck } from '../../src/sources/types';
import { openStorage, type StorageBackend } from '../../src/storage';
import { lifeboatFailure, psql, SCRATCH_POSTGRES, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('untrusted');
const suffix = randomBytes(4).toString('hex');
const db = `lb_ut_${suffix}`;
const victim = `lb_ut_victim_${suffix}`;
const taskQueue = uniqueName('untrusted-it');
const marker = (what: string) => join(root, `pwned-${what}`);
const markers: string[] = [];
let app: SshHost;
let t: TemporalFixture;
let storage: StorageBackend;
let good: BackupResult;

const scratchDbs = () => psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_verify_%'");
/** No scratch database is left; other test runs on this PostgreSQL drill too, so theirs are waited out (ours would stay). */
const noScratchLeft = () => expect.poll(scratchDbs, { timeout: 30_000, interval: 250 }).toBe('0');

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  app = await startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile });
  await mkdir(join(app.dataDir, 'site'), { recursive: true });
  await writeFile(join(app.dataDir, 'site/index.html'), '<h1>shop</h1>\n');
  await psql(`CREATE DATABASE ${db}`);
  await psql('CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 250); CREATE TABLE keep (x text); INSERT INTO keep VALUES (\'a\'), (\'b\'), (\'c\');', db);
  await psql(`CREATE DATABASE ${victim}`);
  await psql('CREATE TABLE precious (x int); INSERT INTO precious VALUES (1);', victim);
  const storagePath = join(root, 'storage');
  await mkdir(storagePath);
  const sources = [
    {
      name: 'app',
      host: '127.0.0.1',
      port: app.port,
      artifacts: [
        { type: 'postgres', name: 'orders', database: db, host: '127.0.0.1' },
        { type: 'files', name: 'site', paths: [join(app.dataDir, 'site')] },
      ],
    },
  ];
  const configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile, knownHosts: knownHostsFile },
    storages: { local: { type: 'local', path: storagePath } },
    plans: {
      trust: { storages: ['local'], verify: { postgres: { ...SCRATCH_POSTGRES }, older: 0 }, sources },
      rootdrill: { storages: ['local'], verify: { postgres: { ...SCRATCH_POSTGRES, user: 'postgres' }, older: 0 }, sources },
    },
  });
  storage = await openStorage('local', { type: 'local', path: storagePath });
  t = await temporalFixture(configPath, taskQueue);
  good = await backup('trust');
}, 170_000);

afterAll(async () => {
  await t?.close();
  await app?.stop();
  for (const d of [db, victim, `${db}_a`]) await psql(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

const backup = (plan: string): Promise<BackupResult> =>
  t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('ut-backup'), args: [{ plan, tier: 'manual' }] });
const verify = (plan: string, snapshot: string): Promise<SnapshotVerification[]> =>
  t.client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('ut-verify'), args: [{ plan, snapshots: [snapshot] }] });
const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('ut-restore'), args: [{ plan: 'trust', snapshot: 'latest', force: false, dryRun: false, ...over }] });

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

/** The drill's result as recorded in the snapshot's record (written before a failed drill fails the run). */
async function recordedChecks(plan: string, snapshot: string): Promise<VerifyCheck[]> {
  const record = await storage.getJson<{ verification: SnapshotVerification }>(recordKey(plan, snapshot));
  return record!.verification.checks;
}

const failedChecks = (checks: VerifyCheck[]) => checks.filter((c) => !c.ok).map((c) => `${c.artifact}: ${c.check}`);

let forged = 0;
/**
 * A copy of the good snapshot under a new name, edited by `edit`, with a fresh manifest, archive and record whose
 * checksums all agree: what someone who can write to storage can make.
 */
async function forge(edit: (dir: string, meta: { components: Record<string, RecordedComponent> }) => Promise<void>): Promise<string> {
  const name = `trust-2020010${++forged}T000000`;
  const dir = join(root, 'forge', name);
  await mkdir(join(root, 'forge'), { recursive: true });
  await cp(good.snapshot_dir, dir, { recursive: true });
  const meta = parse(await readFile(join(dir, 'metadata.yml'), 'utf8'));
  await edit(dir, meta);
  await writeFile(join(dir, 'metadata.yml'), stringify({ ...meta, snapshot: name }));
  const manifest = await buildManifest(dir, { skip: (rel) => rel === 'manifest.sha256' });
  await writeFile(join(dir, 'manifest.sha256'), manifest.text);
  const archive = await createArchive(dir, join(root, 'forge', `${name}.tar.zst`), 'tar.zst');
  const key = archiveKey('trust', name, 'tar.zst');
  await storage.put(key, archive.path, { sha256: archive.sha256, size: archive.size });
  const record = (await storage.getJson<Record<string, unknown>>(recordKey('trust', good.snapshot)))!;
  const manifestSha = createHash('sha256').update(manifest.text).digest('hex');
  await storage.putJson(recordKey('trust', name), {
    ...record,
    snapshot: name,
    key,
    checksum_sha256: archive.sha256,
    size_bytes: archive.size,
    checkpoints: archive.checkpoints,
    manifest: { ...(record.manifest as object), sha256: manifestSha },
    verification: undefined,
  });
  return name;
}

describe('the drill runs as a role that owns only its scratch databases', () => {
  it('passes end to end as lifeboat_drill, and says so in the record', async () => {
    expect(await psql("SELECT rolsuper || ':' || rolcreatedb FROM pg_roles WHERE rolname = 'lifeboat_drill'")).toBe('false:true');
    const [result] = await verify('trust', good.snapshot);
    expect(result!.ok).toBe(true);
    const role = result!.checks.find((c) => c.artifact === 'orders' && c.check === 'scratch role');
    expect(role).toMatchObject({ ok: true, detail: expect.stringContaining('lifeboat_drill on 127.0.0.1:5432') });
    expect(result!.checks.find((c) => c.artifact === 'orders' && c.check === 'rows')).toMatchObject({ ok: true, detail: '2 tables, 253 rows as recorded' });
    await noScratchLeft();
  });

  it('refuses a drill configured with a superuser, before any scratch database exists', async () => {
    const snap = await backup('rootdrill');
    const cause = await failureOf(verify('rootdrill', snap.snapshot));
    expect(cause.type).toBe('VerificationFailed');
    expect(cause.message).toMatch(/orders: scratch role: refused to load a snapshot as postgres on 127\.0\.0\.1:5432, which is a superuser/);
    expect(cause.message).toContain('CREATE ROLE lifeboat_drill LOGIN CREATEDB');
    const checks = await recordedChecks('rootdrill', snap.snapshot);
    expect(checks.filter((c) => c.artifact === 'orders').map((c) => c.check)).toEqual(['scratch role']); // nothing loaded
    expect(failedChecks(checks)).toEqual(['orders: scratch role']);
    expect(checks.filter((c) => c.artifact === 'site').length).toBeGreaterThan(0); // the files artifact was still drilled
    await noScratchLeft();
  });
});

describe('a forged snapshot with consistent checksums', () => {
  it('a plain dump with \\! never runs it in restore or the drill; metadata cannot pick the target database', async () => {
    const [mRestore, mVerify] = [marker('restore'), marker('verify')];
    markers.push(mRestore, mVerify);
    const name = await forge(async (dir, meta) => {
      const dump = join(dir, 'database/orders.sql');
      const text = await readFile(dump, 'utf8');
      await writeFile(dump, `\\! touch ${mRestore} ${mVerify}\n${text}\n\\unrestrict guessed\n\\! touch ${mRestore} ${mVerify}\n`);
      meta.components.orders!.details.database = victim; // "restore me over the victim"
    });

    // The dry run names the plan's database, not the one metadata.yml asks for.
    const plan = await restore({ snapshot: name, artifact: 'orders', dryRun: true });
    expect(plan.steps.map((s) => s.target)).toEqual([expect.stringMatching(new RegExp(`^database ${db} on app `))]);

    const cause = await failureOf(restore({ snapshot: name, artifact: 'orders', database: `${db}_a` }));
    expect(cause.type).toBe('IntegrityCheckFailed'); // refused for good: no retries of a forged dump
    expect(cause.message).toContain('backslash commands are restricted');
    expect(await psql('SELECT count(*) FROM pg_tables WHERE schemaname = \'public\'', `${db}_a`)).toBe('0'); // one transaction
    expect(await psql('SELECT count(*) FROM precious', victim)).toBe('1');

    const drill = await failureOf(verify('trust', name));
    expect(drill.type).toBe('VerificationFailed');
    const checks = await recordedChecks('trust', name);
    expect(failedChecks(checks)).toEqual(['orders: load']);
    expect(checks.find((c) => c.check === 'load')!.detail).toContain('backslash commands are restricted');
    for (const m of [mRestore, mVerify]) expect(existsSync(m), m).toBe(false);
    await noScratchLeft();
  });

  it('row-count table names with quotes and semicolons are refused or re-quoted: the other tables survive, each bad entry fails cleanly', async () => {
    const evil = {
      'public.keep; DROP TABLE public.items': 3,
      'public."keep""; DROP TABLE public.items; --"': 3,
      'x; DROP TABLE y': 1,
      'public.items': 250,
      'public.keep': 3,
      '"public"."keep"': 3,
    };
    const name = await forge(async (_dir, meta) => {
      meta.components.orders!.details.row_counts = evil;
    });
    const drill = await failureOf(verify('trust', name));
    expect(drill.type).toBe('VerificationFailed');
    const checks = (await recordedChecks('trust', name)).filter((c) => c.artifact === 'orders');
    expect(failedChecks(checks)).toEqual([
      'orders: rows "public.keep; DROP TABLE public.items"',
      'orders: rows "x; DROP TABLE y"',
      'orders: rows public."keep""; DROP TABLE public.items; --"',
      'orders: rows',
    ]);
    expect(checks.find((c) => c.check === 'rows "x; DROP TABLE y"')!.detail).toContain('not a table name as pg_dump writes it');
    // Parsed and re-quoted: a table of that odd name, which does not exist; it was not run as SQL.
    expect(checks.find((c) => c.check === 'rows public."keep""; DROP TABLE public.items; --"')!.detail).toBe('expected 3 rows, the table cannot be read');
    expect(checks.find((c) => c.check === 'rows')!.detail).toBe('3 of 6 tables differ from the recorded row counts or cannot be counted');
    await noScratchLeft();
  });

  it('a metadata path with .. is refused by restore (IntegrityCheckFailed) and fails only its own check in the drill', async () => {
    const name = await forge(async (_dir, meta) => {
      meta.components.orders!.paths = ['database/../../../../../../etc/passwd'];
    });
    const cause = await failureOf(restore({ snapshot: name, artifact: 'orders', database: `${db}_a`, dryRun: true }));
    expect(cause.type).toBe('IntegrityCheckFailed');
    expect(cause.message).toContain('"database/../../../../../../etc/passwd" for artifact orders');
    await failureOf(verify('trust', name));
    const checks = await recordedChecks('trust', name);
    expect(failedChecks(checks)).toEqual(['orders: snapshot paths']);
    expect(checks.filter((c) => c.artifact === 'site').every((c) => c.ok)).toBe(true);
    await noScratchLeft();
  });
});

// ------------------------------------------------------------------ the restore modules directly

const host = new LocalHost('app');
const signal = new AbortController().signal;

function mod<A extends Artifact>(a: A): RestoreModule<A> {
  return restoreModule(a)!;
}

function comp(type: Artifact['type'], paths: string[], details: Record<string, unknown> = {}): RecordedComponent {
  return { type, source: 'app', status: 'ok', required: true, paths, bytes: 0, details };
}

async function drill<A extends Artifact>(artifact: A, snapshotDir: string, component: RecordedComponent, scratch: ScratchServers = {}): Promise<VerifyCheck[]> {
  const scratchDir = join(root, uniqueName('scratch'));
  await mkdir(scratchDir, { recursive: true });
  return mod(artifact).verify({ artifact, snapshotDir, component, scratchDir, scratch, signal, progress: () => {} });
}

const restoreCtx = <A extends Artifact>(artifact: A, snapshotDir: string, component: RecordedComponent, options: Partial<RestoreOptions> = {}) => ({
  host,
  artifact,
  snapshotDir,
  component,
  options: { force: false, ...options },
  signal,
  progress: () => {},
});

describe('the drill role check refuses any role that reaches beyond its scratch databases', () => {
  const roles = { program: `lb_ut_prog_${suffix}`, member: `lb_ut_member_${suffix}`, createrole: `lb_ut_cr_${suffix}` };
  const artifact = PostgresArtifact.parse({ type: 'postgres', name: 'orders', database: db, host: '127.0.0.1' });

  beforeAll(async () => {
    for (const r of Object.values(roles)) await psql(`CREATE ROLE ${r} LOGIN CREATEDB`);
    await psql(`GRANT pg_execute_server_program TO ${roles.program}; GRANT postgres TO ${roles.member}; ALTER ROLE ${roles.createrole} CREATEROLE`);
  });

  afterAll(async () => {
    for (const r of Object.values(roles)) await psql(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
  });

  it.each([
    ['program', 'is a member of pg_execute_server_program'],
    ['member', 'is a member of postgres'],
    ['createrole', 'has CREATEROLE'],
  ] as const)('%s: %s', async (which, why) => {
    const component = parse(await readFile(join(good.snapshot_dir, 'metadata.yml'), 'utf8')).components.orders as RecordedComponent;
    const checks = await drill(artifact, good.snapshot_dir, component, { postgres: { ...SCRATCH_POSTGRES, user: roles[which] } });
    expect(checks).toHaveLength(1);
    expect(checks[0]).toMatchObject({ check: 'scratch role', ok: false, detail: expect.stringContaining(`as ${roles[which]} on 127.0.0.1:5432, which ${why}:`) });
    await noScratchLeft();
  });
});

describe('recorded paths must be the artifact\'s own, for every restore module', () => {
  const dir = join(root, 'paths-snapshot');
  const notOwn = 'which is not its own place in the snapshot';
  const cases: Array<[string, Artifact, unknown, string]> = [
    ['postgres', PostgresArtifact.parse({ type: 'postgres', name: 'orders', database: db }), ['../outside.sql'], `"../outside.sql" for artifact orders, ${notOwn}`],
    ['postgres (another artifact\'s dump)', PostgresArtifact.parse({ type: 'postgres', name: 'orders', database: db }), ['database/billing.sql'], notOwn],
    ['postgres (only the globals)', PostgresArtifact.parse({ type: 'postgres', name: 'orders', database: db }), ['database/orders.globals.sql'], 'records no dump file for postgres artifact orders'],
    ['mysql', MysqlArtifact.parse({ type: 'mysql', name: 'shop', database: 'shop' }), ['database/shop.sql', '/etc/passwd'], `"/etc/passwd" for artifact shop, ${notOwn}`],
    ['mysql (no list)', MysqlArtifact.parse({ type: 'mysql', name: 'shop', database: 'shop' }), 'database/shop.sql', 'records no list of paths for artifact shop'],
    ['sqlite', SqliteArtifact.parse({ type: 'sqlite', name: 'notes', path: '/srv/notes.db' }), ['database/./notes.sqlite'], notOwn],
    ['redis', RedisArtifact.parse({ type: 'redis', name: 'cache' }), ['database/cache.rdb/../../../x.rdb'], notOwn],
    ['redis (nothing)', RedisArtifact.parse({ type: 'redis', name: 'cache' }), [], 'records no RDB file for redis artifact cache'],
    ['files', FilesArtifact.parse({ type: 'files', name: 'site', paths: ['/srv/site'] }), ['files/app/site/../../../../etc'], `for artifact site, ${notOwn}`],
    ['files (another source\'s tree)', FilesArtifact.parse({ type: 'files', name: 'site', paths: ['/srv/site'] }), ['files/db/site'], notOwn],
  ];

  it.each(cases)('%s: refused by the dry run and the restore, a failed check in the drill', async (_what, artifact, paths, why) => {
    await mkdir(dir, { recursive: true });
    const c = comp(artifact.type, paths as string[], { database: 'x', path: '/etc/shadow' });
    const options = artifact.type === 'redis' || artifact.type === 'sqlite' || artifact.type === 'files' ? { dir: join(root, 'paths-target') } : { database: `${db}_paths` };
    for (const step of [() => mod(artifact).planRestore(restoreCtx(artifact, dir, c, options)), () => mod(artifact).restore(restoreCtx(artifact, dir, c, options))]) {
      const err = await lifeboatFailure(step());
      expect(err.code).toBe('IntegrityCheckFailed');
      expect(err.message).toContain(why);
    }
    const scratch: ScratchServers = { postgres: { ...SCRATCH_POSTGRES }, mysql: { user: 'root' } };
    const checks = await drill(artifact, dir, c, scratch);
    expect(checks).toEqual([{ artifact: artifact.name, check: 'snapshot paths', ok: false, detail: expect.stringContaining(why) }]);
    expect(existsSync(join(root, 'paths-target'))).toBe(false);
  });

  it('sqlite: the target comes from the plan and --to-dir, never from metadata.yml', async () => {
    const artifact = SqliteArtifact.parse({ type: 'sqlite', name: 'notes', path: join(root, 'live/notes.db') });
    const step = await mod(artifact).planRestore(restoreCtx(artifact, dir, comp('sqlite', ['database/notes.sqlite'], { path: '/etc/shadow' })));
    expect(step.target).toBe(`app (local):${join(root, 'live/notes.db')}`);
  });
});

describe('mysql: a dump\'s client commands never run', () => {
  const mdb = `lb_ut_${suffix}`;
  const asRoot = async (sql: string) => (await execa('mariadb', ['-uroot', '--batch', '--skip-column-names', '-e', sql])).stdout;
  const artifact = MysqlArtifact.parse({ type: 'mysql', name: 'shop', database: mdb });
  const dir = join(root, 'mysql-snapshot');

  beforeAll(async () => {
    await asRoot(`CREATE DATABASE \`${mdb}\`; CREATE TABLE \`${mdb}\`.items (id INT PRIMARY KEY); INSERT INTO \`${mdb}\`.items VALUES (1), (2)`);
    await mkdir(join(dir, 'database'), { recursive: true });
    const dump = await execa('mariadb-dump', ['--single-transaction', '--user=root', '--databases', '--', mdb]);
    const [mRestore, mVerify] = [marker('mysql-restore'), marker('mysql-verify')];
    markers.push(mRestore, mVerify);
    await writeFile(join(dir, 'database/shop.sql'), `${dump.stdout}\n\\! touch ${mRestore} ${mVerify}\nsystem touch ${mRestore} ${mVerify}\n`);
  });

  afterAll(async () => {
    await asRoot(`DROP DATABASE IF EXISTS \`${mdb}\`; DROP DATABASE IF EXISTS \`${mdb}_r\``).catch(() => undefined);
  });

  it('restore refuses the forged dump for good and the drill fails its load; metadata cannot pick the target', async () => {
    const c = comp('mysql', ['database/shop.sql'], { database: 'mysql' });
    expect((await mod(artifact).planRestore(restoreCtx(artifact, dir, c))).target).toBe(`database ${mdb} on app (local)`);
    const err = await lifeboatFailure(mod(artifact).restore(restoreCtx(artifact, dir, comp('mysql', ['database/shop.sql'], { database: mdb }), { database: `${mdb}_r` })));
    expect(err.code).toBe('IntegrityCheckFailed');
    expect(err.message).toContain('sandbox');
    const checks = await drill(artifact, dir, comp('mysql', ['database/shop.sql'], { database: mdb }), { mysql: { user: 'root' } });
    expect(checks.find((c) => c.check === 'load')).toMatchObject({ ok: false, detail: expect.stringContaining('sandbox') });
    expect(await asRoot("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'lifeboat\\_verify\\_%'")).toBe('0');
    for (const m of markers) expect(existsSync(m), m).toBe(false);
  });
});
