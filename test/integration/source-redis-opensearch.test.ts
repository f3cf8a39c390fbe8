// The redis and opensearch modules through LocalHost, against real programs: redis-server/redis-cli/
// redis-check-rdb, curl and rsync. OpenSearch itself cannot run here: its HTTP API is a stand-in
// (test/support/opensearch-standin.ts) that answers with OpenSearch's shapes and writes repository files.
import { copyFile, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitForPort } from '../../scripts/lib/services';
import { OpensearchArtifact, RedisArtifact, type Artifact, type Source } from '../../src/config/schema';
import type { ExecOptions, Host } from '../../src/remote/host';
import { LocalHost } from '../../src/remote/local';
import { opensearch } from '../../src/sources/opensearch';
import { redis } from '../../src/sources/redis';
import type { CaptureContext, Captured } from '../../src/sources/types';
import { startOpensearchStandin, type OpensearchStandin } from '../support/opensearch-standin';
import { tempDir, lifeboatFailure } from '../support/fixtures';

const root = await tempDir('redis-os');
const host = new LocalHost('app');
const servers: ResultPromise[] = [];
const REDIS_PASSWORD = `p@ss "w$(id)'\`x\\y`;
const OS_PASSWORD = 'os "pa:ss\\word $(id) `x`';

interface RedisServer {
  port: number;
  dir: string;
}

async function startRedis(args: string[], dir?: string): Promise<RedisServer> {
  const port = await freePort();
  const d = dir ?? (await tempDir('redis-data'));
  const child = execa('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', d, '--logfile', join(d, 'redis.log'), ...args], {
    stdin: 'ignore',
    reject: false,
    cleanup: true,
  });
  servers.push(child);
  await waitForPort(port, 15_000);
  return { port, dir: d };
}

async function cli(port: number, args: string[], password?: string): Promise<string> {
  const r = await execa('redis-cli', ['-p', String(port), ...args], { env: password ? { REDISCLI_AUTH: password } : {} });
  return r.stdout.trim();
}

async function writeKeys(port: number, n: number, prefix: string, password?: string): Promise<void> {
  const pairs = Array.from({ length: n }, (_, i) => [`${prefix}:${i}`, `value-${i}`]).flat();
  expect(await cli(port, ['MSET', ...pairs], password)).toBe('OK');
}

let snapshotSeq = 0;
function ctx<A extends Artifact>(artifact: A, opts: { snapshot?: string; signal?: AbortSignal; host?: Host } = {}): CaptureContext<A> {
  const snapshot = opts.snapshot ?? `app-2026010${(snapshotSeq % 9) + 1}T0000${String(++snapshotSeq).padStart(2, '0')}`;
  return {
    host: opts.host ?? host,
    source: { name: 'app', host: 'local', artifacts: [artifact] } as unknown as Source,
    artifact,
    snapshot,
    snapshotDir: join(root, 'snapshots', `${snapshot}-${snapshotSeq}.partial`),
    quiet: (_phase, _bound, fn) => fn(),
    mirrorDir: join(root, 'mirror', artifact.name),
    denyList: [],
    signal: opts.signal ?? new AbortController().signal,
    progress: () => {},
  };
}

const failure = lifeboatFailure;

/** Starts a throwaway server on a copy of the RDB and returns its keys' count and a sample value. */
async function restore(rdb: string, sampleKey: string): Promise<{ dbsize: number; sample: string }> {
  const dir = await tempDir('redis-restore');
  await copyFile(rdb, join(dir, 'dump.rdb'));
  const s = await startRedis(['--save', '', '--appendonly', 'no'], dir);
  return { dbsize: Number(await cli(s.port, ['DBSIZE'])), sample: await cli(s.port, ['GET', sampleKey]) };
}

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await Promise.allSettled(servers);
  await rm(root, { recursive: true, force: true });
});

describe('redis', () => {
  const artifact = (port: number, over: Record<string, unknown> = {}) => RedisArtifact.parse({ name: 'cache', type: 'redis', port, ...over });

  it("skips the machine's ephemeral Redis (save \"\", appendonly no) without touching its config", async () => {
    const before = await cli(6379, ['CONFIG', 'GET', 'save']);
    const a = artifact(6379);
    const c = ctx(a);
    const captured = await redis.capture(c);
    expect(captured.status).toBe('skipped');
    expect(captured.details).toMatchObject({ ephemeral: true });
    expect(captured.paths).toEqual([]);
    expect(await redis.estimateBytes(host, a, new AbortController().signal)).toBe(0);
    expect(await cli(6379, ['CONFIG', 'GET', 'save'])).toBe(before);
    expect(await stat(join(c.snapshotDir, 'database')).catch(() => null)).toBeNull();
  });

  it('captures a fresh RDB that redis-check-rdb accepts and a new server restores', async () => {
    const s = await startRedis(['--save', '3600 1', '--appendonly', 'no']);
    await writeKeys(s.port, 500, 'k');
    const a = artifact(s.port);
    expect(redis.requiredTools(a)).toEqual(['redis-cli']);
    expect(await redis.estimateBytes(host, a, new AbortController().signal)).toBeGreaterThan(0);
    const c = ctx(a);
    const captured = await redis.capture(c);
    expect(captured.status).toBeUndefined();
    expect(captured.paths).toEqual(['database/cache.rdb']);
    const rdb = join(c.snapshotDir, 'database/cache.rdb');
    expect(captured.bytes).toBe((await stat(rdb)).size);
    expect(captured.details).toMatchObject({ rdb_bytes: captured.bytes, keys: 500, redis_check_rdb: 'ok', aof: false });
    expect(Date.parse(captured.details.lastsave as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(await readdir(join(c.snapshotDir, 'database'))).toEqual(['cache.rdb']); // no .partial left
    await execa('redis-check-rdb', [rdb]);
    expect(await restore(rdb, 'k:417')).toEqual({ dbsize: 500, sample: 'value-417' });

    // Right away again, within the same second as the last save: the new RDB must still be a new save.
    await writeKeys(s.port, 1, 'late');
    const c2 = ctx(a);
    const second = await redis.capture(c2);
    expect(second.details.keys).toBe(501);
    expect(Date.parse(second.details.lastsave as string)).toBeGreaterThan(Date.parse(captured.details.lastsave as string));
    expect(await restore(join(c2.snapshotDir, 'database/cache.rdb'), 'late:0')).toEqual({ dbsize: 501, sample: 'value-0' });
  });

  it('waits out a BGSAVE already in progress and saves again (its own save holds later writes)', async () => {
    const s = await startRedis(['--save', '3600 1', '--appendonly', 'no']);
    await writeKeys(s.port, 300, 'k');
    await cli(s.port, ['CONFIG', 'SET', 'rdb-key-save-delay', '3000']); // ~1 s per save: long enough to collide
    expect(await cli(s.port, ['BGSAVE'])).toBe('Background saving started');
    await writeKeys(s.port, 1, 'after-foreign-save');
    expect(await cli(s.port, ['INFO', 'persistence'])).toMatch(/rdb_bgsave_in_progress:1/);
    const c = ctx(artifact(s.port));
    const captured = await redis.capture(c);
    expect(captured.details.keys).toBe(301);
    expect(await cli(s.port, ['INFO', 'persistence'])).toMatch(/rdb_saves:2\b/); // the foreign one, then ours
    expect((await restore(join(c.snapshotDir, 'database/cache.rdb'), 'after-foreign-save:0')).sample).toBe('value-0');
  });

  it('pulls the AOF directory too when appendonly is on', async () => {
    const s = await startRedis(['--save', '', '--appendonly', 'yes']);
    await writeKeys(s.port, 50, 'aof');
    const c = ctx(artifact(s.port));
    const captured = await redis.capture(c);
    expect(captured.paths).toEqual(['database/cache.rdb', 'database/cache.aof']);
    expect(captured.details).toMatchObject({ aof: true, keys: 50, redis_check_rdb: 'ok', aof_path: join(s.dir, 'appendonlydir') });
    const aofDir = join(c.snapshotDir, 'database/cache.aof', s.dir.replace(/^\//, ''), 'appendonlydir');
    const names = await readdir(aofDir);
    expect(names).toContain('appendonly.aof.manifest');
    expect(names.some((n) => /\.incr\.aof$/.test(n))).toBe(true);
    expect(await readFile(join(aofDir, names.find((n) => n.endsWith('.incr.aof'))!), 'utf8')).toContain('aof:49');
    expect(captured.bytes).toBeGreaterThan(captured.details.rdb_bytes as number);
    expect((await restore(join(c.snapshotDir, 'database/cache.rdb'), 'aof:7')).dbsize).toBe(50);
  });

  it('authenticates with a password from a secret file; wrong or missing password is AuthFailed', async () => {
    const s = await startRedis(['--save', '3600 1', '--requirepass', REDIS_PASSWORD]);
    await writeKeys(s.port, 20, 'sec', REDIS_PASSWORD);
    const good = join(root, 'redis-pass');
    const bad = join(root, 'redis-wrong');
    await writeFile(good, `${REDIS_PASSWORD}\n`, { mode: 0o600 });
    await writeFile(bad, 'not-it\n', { mode: 0o600 });
    const c = ctx(artifact(s.port, { password: { file: good } }));
    const captured = await redis.capture(c);
    expect(captured.details).toMatchObject({ keys: 20, redis_check_rdb: 'ok' });
    expect((await restore(join(c.snapshotDir, 'database/cache.rdb'), 'sec:3')).sample).toBe('value-3');

    const wrong = await failure(redis.capture(ctx(artifact(s.port, { password: { file: bad } }))));
    expect(wrong.code).toBe('AuthFailed');
    expect(wrong.message).not.toContain(REDIS_PASSWORD);
    expect((await failure(redis.capture(ctx(artifact(s.port))))).code).toBe('AuthFailed');
    expect((await failure(redis.estimateBytes(host, artifact(s.port, { password: { file: bad } }), new AbortController().signal))).code).toBe('AuthFailed');
  });

  it('a refused connection is CommandFailed (retryable)', async () => {
    const err = await failure(redis.capture(ctx(artifact(await freePort()))));
    expect(err.code).toBe('CommandFailed');
    expect(err.message).toMatch(/Connection refused/);
  });

  it('a failed BGSAVE (rdb_last_bgsave_status:err) is CommandFailed', async () => {
    const s = await startRedis(['--save', '3600 1']);
    await writeKeys(s.port, 5, 'k');
    await rm(s.dir, { recursive: true }); // its working directory vanishes: the save child cannot create its temp file
    const err = await failure(redis.capture(ctx(artifact(s.port))));
    expect(err.code).toBe('CommandFailed');
    expect(err.message).toMatch(/rdb_last_bgsave_status:err/);
  });

  it('a save slower than saveTimeoutSeconds fails; cancellation stops the wait promptly', async () => {
    const s = await startRedis(['--save', '3600 1']);
    await writeKeys(s.port, 30, 'k');
    await cli(s.port, ['CONFIG', 'SET', 'rdb-key-save-delay', '1000000']); // 1 s per key: ~30 s per save
    const t0 = Date.now();
    const err = await failure(redis.capture(ctx(artifact(s.port, { saveTimeoutSeconds: 2 }))));
    expect(err.code).toBe('CommandFailed');
    expect(err.message).toMatch(/did not finish within 2 s/);
    expect(Date.now() - t0).toBeLessThan(10_000);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 800);
    const t1 = Date.now();
    await expect(redis.capture(ctx(artifact(s.port, { saveTimeoutSeconds: 600 }), { signal: ac.signal }))).rejects.toThrow();
    expect(Date.now() - t1).toBeLessThan(5_000);
  });

  it('an RDB that fails redis-check-rdb is IntegrityCheckFailed and leaves no file behind', async () => {
    const s = await startRedis(['--save', '3600 1']);
    await writeKeys(s.port, 100, 'k');
    // Simulates a copy damaged on the way: the source's `cat` delivers only the first 60 bytes.
    const truncating: Host = {
      label: host.label,
      exec: (argv: string[], opts?: ExecOptions) => host.exec(argv[0] === 'cat' ? ['head', '-c', '60', '--', argv[2]!] : argv, opts),
      rsyncTarget: () => host.rsyncTarget(),
      close: () => {},
    };
    const c = ctx(artifact(s.port), { host: truncating });
    const err = await failure(redis.capture(c));
    expect(err.code).toBe('IntegrityCheckFailed');
    expect(err.message).toMatch(/RDB ERROR DETECTED|Unexpected EOF/);
    expect(await readdir(join(c.snapshotDir, 'database'))).toEqual([]);
  });

  it('records a missing redis-check-rdb on the backup host instead of failing', async () => {
    const s = await startRedis(['--save', '3600 1']);
    await writeKeys(s.port, 10, 'k');
    const bin = join(root, 'bin-without-check');
    await mkdir(bin, { recursive: true });
    for (const tool of ['redis-cli', 'cat', 'sh']) {
      const { stdout } = await execa('sh', ['-c', 'command -v "$1"', 'x', tool]);
      await symlink(stdout.trim(), join(bin, tool));
    }
    const savedPath = process.env.PATH;
    process.env.PATH = bin;
    let captured: Captured;
    try {
      captured = await redis.capture(ctx(artifact(s.port)));
    } finally {
      process.env.PATH = savedPath;
    }
    expect(captured.details).toMatchObject({ redis_check_rdb: 'unavailable', keys: 10 });
  });
});

describe('opensearch (HTTP stand-in, real curl and rsync)', () => {
  let standin: OpensearchStandin;
  let repoRoot: string;
  let passFile: string;
  const artifact = (over: Record<string, unknown> = {}) =>
    OpensearchArtifact.parse({
      name: 'search',
      type: 'opensearch',
      url: standin.url,
      repositoryPath: join(repoRoot, 'lifeboat'),
      username: 'lifeboat',
      password: { file: passFile },
      keepSnapshots: 2,
      ...over,
    });

  beforeAll(async () => {
    repoRoot = await tempDir('os-path-repo');
    passFile = join(root, 'os-pass');
    await writeFile(passFile, `${OS_PASSWORD}\n`, { mode: 0o600 });
    standin = await startOpensearchStandin({ pathRepo: [repoRoot], auth: { username: 'lifeboat', password: OS_PASSWORD } });
  });
  afterAll(() => standin?.stop());

  const repoFiles = async (dir: string) => (await readdir(dir, { recursive: true })).map(String).sort();

  it('registers the repository once, snapshots, pulls it and keeps keepSnapshots of its own', async () => {
    const a = artifact();
    expect(opensearch.requiredTools(a)).toEqual(['curl', 'rsync']);
    expect(await opensearch.estimateBytes(host, a, new AbortController().signal)).toBe(3 * 10_240);
    // Someone else's snapshot in the same repository must survive retention.
    const stamps = ['20261122T030000', '20261123T030000', '20261124T030000'];
    const results: Array<{ c: CaptureContext<OpensearchArtifact>; captured: Captured }> = [];
    for (const [i, stamp] of stamps.entries()) {
      const c = ctx(a, { snapshot: `app-${stamp}` });
      results.push({ c, captured: await opensearch.capture(c) });
      if (i === 0) {
        const manual = await fetch(`${standin.url}/_snapshot/lifeboat/manual-1?wait_for_completion=true`, {
          method: 'PUT',
          headers: { authorization: `Basic ${Buffer.from(`lifeboat:${OS_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
          body: JSON.stringify({ indices: 'users' }),
        });
        expect(manual.status).toBe(200);
      }
    }
    const [first, second, third] = results;
    expect(first!.captured.details).toMatchObject({
      repository: 'lifeboat',
      repository_registered: true,
      opensearch_snapshot: 'lifeboat-app-20261122t030000',
      indices: ['app-logs', 'users'],
      shards: { total: 3, successful: 3, failed: 0 },
      deleted_snapshots: [],
    });
    expect(second!.captured.details).toMatchObject({ repository_registered: false, deleted_snapshots: [] });
    expect(third!.captured.details).toMatchObject({ repository_registered: false, deleted_snapshots: ['lifeboat-app-20261122t030000'] });
    expect(standin.calls.filter((x) => x.method === 'PUT' && x.path === '/_snapshot/lifeboat')).toHaveLength(1);
    expect(standin.calls.find((x) => x.path === '/_snapshot/lifeboat')?.body).toBeUndefined();
    expect(standin.calls.find((x) => x.method === 'PUT' && x.path === '/_snapshot/lifeboat')?.body).toEqual({
      type: 'fs',
      settings: { location: a.repositoryPath },
    });
    expect(standin.calls.find((x) => x.path.startsWith('/_snapshot/lifeboat/lifeboat-app-20261122t030000?'))?.body).toEqual({
      indices: '*',
      include_global_state: false,
    });
    expect(standin.calls.every((x) => x.user === 'lifeboat')).toBe(true);

    // The snapshot holds the repository under opensearch/<name>/<repositoryPath>.
    const pulled = join(first!.c.snapshotDir, 'opensearch/search', a.repositoryPath.replace(/^\//, ''));
    const files = await repoFiles(pulled);
    expect(first!.captured.paths).toEqual(['opensearch/search']);
    expect(files).toContain('index.latest');
    expect(files).toContain('index-0');
    expect(files.some((f) => /^snap-\w+\.dat$/.test(f))).toBe(true);
    expect(files.some((f) => /^meta-\w+\.dat$/.test(f))).toBe(true);
    expect(files.some((f) => /^indices\/\w+\/0\/__base$/.test(f))).toBe(true);
    expect(first!.captured.bytes).toBeGreaterThan(0);

    // Retention ran after the third pull: the repository itself no longer holds the first snapshot.
    const list = (await (
      await fetch(`${standin.url}/_snapshot/lifeboat/_all`, { headers: { authorization: `Basic ${Buffer.from(`lifeboat:${OS_PASSWORD}`).toString('base64')}` } })
    ).json()) as { snapshots: Array<{ snapshot: string; uuid: string }> };
    expect(list.snapshots.map((s) => s.snapshot).sort()).toEqual(['lifeboat-app-20261123t030000', 'lifeboat-app-20261124t030000', 'manual-1']);
    const live = await repoFiles(a.repositoryPath);
    const snapFiles = live.filter((f) => /^snap-\w+\.dat$/.test(f));
    expect(snapFiles).toHaveLength(3);
    expect(live).toContain('index-4'); // 3 creates + the manual one + 1 delete; older index-N removed
    expect(live.filter((f) => /^index-\d+$/.test(f))).toEqual(['index-4']);
  });

  it('an earlier attempt of the same capture (a retry) is replaced, not an error', async () => {
    const a = artifact();
    const snapshot = 'app-20261125T030000';
    await opensearch.capture(ctx(a, { snapshot }));
    const before = standin.calls.length;
    const again = await opensearch.capture(ctx(a, { snapshot }));
    expect(again.details.opensearch_snapshot).toBe('lifeboat-app-20261125t030000');
    const calls = standin.calls.slice(before).map((x) => `${x.method} ${x.path.split('?')[0]}`);
    expect(calls.slice(0, 4)).toEqual([
      'GET /_snapshot/lifeboat',
      'PUT /_snapshot/lifeboat/lifeboat-app-20261125t030000',
      'DELETE /_snapshot/lifeboat/lifeboat-app-20261125t030000',
      'PUT /_snapshot/lifeboat/lifeboat-app-20261125t030000',
    ]);
  });

  it('a wrong or missing password is AuthFailed', async () => {
    const bad = join(root, 'os-wrong');
    await writeFile(bad, 'nope\n', { mode: 0o600 });
    const wrong = await failure(opensearch.capture(ctx(artifact({ password: { file: bad } }))));
    expect(wrong.code).toBe('AuthFailed');
    expect(wrong.message).toMatch(/HTTP 401/);
    expect((await failure(opensearch.capture(ctx(artifact({ username: undefined, password: undefined }))))).code).toBe('AuthFailed');
    expect((await failure(opensearch.estimateBytes(host, artifact({ password: { file: bad } }), new AbortController().signal))).code).toBe('AuthFailed');
  });

  it('a repository outside path.repo, or one registered elsewhere, is ConfigError', async () => {
    const outside = await failure(opensearch.capture(ctx(artifact({ repository: 'elsewhere', repositoryPath: join(root, 'not-in-path-repo') }))));
    expect(outside.code).toBe('ConfigError');
    expect(outside.message).toMatch(/path\.repo/);
    const moved = await failure(opensearch.capture(ctx(artifact({ repositoryPath: join(repoRoot, 'other') }))));
    expect(moved.code).toBe('ConfigError');
    expect(moved.message).toMatch(/exists as fs at/);
  });

  it('a missing index is ConfigError', async () => {
    const err = await failure(opensearch.capture(ctx(artifact({ indices: ['nope'] }))));
    expect(err.code).toBe('ConfigError');
    expect(err.message).toMatch(/no such index \[nope\]/);
  });

  it('a PARTIAL snapshot is CommandFailed naming the failed shards', async () => {
    const broken = await startOpensearchStandin({ pathRepo: [repoRoot], failIndices: ['users'] });
    try {
      const a = artifact({ url: broken.url, username: undefined, password: undefined, repository: 'partial', repositoryPath: join(repoRoot, 'partial') });
      const err = await failure(opensearch.capture(ctx(a)));
      expect(err.code).toBe('CommandFailed');
      expect(err.message).toMatch(/ended PARTIAL; failed shards: users\[0\]/);
      expect(broken.calls.every((x) => x.user === undefined)).toBe(true);
    } finally {
      await broken.stop();
    }
  });

  it('an unreachable API is CommandFailed', async () => {
    const err = await failure(opensearch.capture(ctx(artifact({ url: `http://127.0.0.1:${await freePort()}` }))));
    expect(err.code).toBe('CommandFailed');
    expect(err.message).toMatch(/exit 7/);
  });
});
