// Redis restore and restore drill. A running Redis keeps its data in memory and writes dump.rdb from it on
// save and shutdown, so a file placed under a live server is overwritten: restore only writes into a
// directory given with --to-dir, while Redis is stopped (the restore workflow's quiesce stops it).
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { RedisArtifact } from '../../config/schema';
import { LifeboatError } from '../../shared/errors';
import { aofDirName, checkRdb, keyspaceKeys, parseInfo, rdbFileName } from '../redis';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { lastLines, pathStates, placeFile } from './remote';
import { dieWithWorker } from '../../shared/die-with-worker';
import { nothingRecorded, recordedPaths, withRecordedPaths } from './snapshot-paths';

const NEEDS_DIR =
  'restoring Redis needs --to-dir <dir>: a running Redis rewrites its dump.rdb from memory, so stop Redis, restore into its data directory ' +
  '(CONFIG GET dir) with --to-dir <that dir> --force, then start it (with appendonly yes, Redis loads its AOF instead: move the AOF directory aside first)';

/** The RDB recorded for this artifact (its AOF directory is never restored, but must be its own too). */
function rdbPath(a: RedisArtifact, c: RecordedComponent): string {
  const file = recordedPaths(c, a.name, [rdbFileName(a), aofDirName(a)]).find((p) => p === rdbFileName(a));
  if (!file) throw nothingRecorded('redis', a.name, 'RDB file');
  return file;
}

function targetPath(ctx: Omit<RestoreContext<RedisArtifact>, 'progress'>): string | undefined {
  return ctx.options.dir && join(ctx.options.dir, 'dump.rdb');
}

export const redisRestore: RestoreModule<RedisArtifact> = {
  async planRestore(ctx): Promise<RestoreStep> {
    rdbPath(ctx.artifact, ctx.component); // a dry run refuses a forged path too
    const path = targetPath(ctx);
    const step = { artifact: ctx.artifact.name, type: 'redis' as const };
    if (!path) return { ...step, target: `redis ${ctx.artifact.host}:${ctx.artifact.port} on ${ctx.host.label}`, targetInUse: true, action: `refused: ${NEEDS_DIR}` };
    const [state] = await pathStates(ctx.host, [path], ctx.signal);
    const used = state === 'file' || state === 'dir';
    const action = used && !ctx.options.force ? `refused: ${path} is not empty (pass --force to replace it)` : 'write dump.rdb (by rename); Redis loads it when started';
    return { ...step, target: `${ctx.host.label}:${path}`, targetInUse: used, action };
  },

  async restore(ctx) {
    const local = join(ctx.snapshotDir, rdbPath(ctx.artifact, ctx.component));
    const path = targetPath(ctx);
    if (!path) throw new LifeboatError('ConfigError', NEEDS_DIR);
    const [state] = await pathStates(ctx.host, [path], ctx.signal);
    if ((state === 'file' || state === 'dir') && !ctx.options.force) {
      throw new LifeboatError('ConfigError', `${path} on ${ctx.host.label} is not empty; pass --force to replace it (with Redis stopped)`);
    }
    ctx.progress({ artifact: ctx.artifact.name, phase: 'push' });
    const warnings = await placeFile(ctx.host, local, path, { signal: ctx.signal });
    return { target: `${ctx.host.label}:${path}`, bytes: (await stat(local)).size, details: { path, ...(warnings.length ? { warnings } : {}) } };
  },

  async verify(ctx) {
    return withRecordedPaths(ctx.artifact.name, async () => {
      const file = join(ctx.snapshotDir, rdbPath(ctx.artifact, ctx.component));
      const work = await mkdtemp(join(ctx.scratchDir, 'redis-'));
      try {
        const rdb = join(work, 'dump.rdb');
        await copyFile(file, rdb);
        return [await rdbCheck(ctx.artifact.name, rdb, ctx.signal), await keysCheck(ctx, work)];
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  },
};

async function rdbCheck(artifact: string, rdb: string, signal: AbortSignal): Promise<VerifyCheck> {
  try {
    const res = await checkRdb(rdb, signal);
    // Without the tool (or with one older than the file), loading it below is the check.
    return { artifact, check: 'redis-check-rdb', ok: true, detail: res === 'ok' ? 'RDB looks OK' : `skipped (${res} on the backup host)` };
  } catch (err) {
    if (!(err instanceof LifeboatError)) throw err;
    return { artifact, check: 'redis-check-rdb', ok: false, detail: err.message };
  }
}

/** A port nobody listens on now (the throwaway server binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Loads the RDB into a throwaway redis-server (no persistence, loopback only) and compares its key count. */
async function keysCheck(ctx: VerifyContext<RedisArtifact>, dir: string): Promise<VerifyCheck> {
  const artifact = ctx.artifact.name;
  const port = await freePort();
  const log = join(dir, 'redis.log');
  // More databases than the default 16, so an RDB from a server configured with more still loads.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--databases', '1024', '--logfile', log];
  const server = execa(...dieWithWorker('redis-server', args), { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', reject: false, cancelSignal: ctx.signal, forceKillAfterDelay: 5000 });
  let exited = false;
  void server.finally(() => (exited = true));
  try {
    const keys = await keyspace(port, () => exited, ctx.signal).catch((err: unknown) => {
      if (err instanceof LifeboatError) return err;
      throw err;
    });
    if (keys instanceof LifeboatError) return { artifact, check: 'keys', ok: false, detail: keys.message };
    if (keys === undefined) {
      const res = await server;
      if ((res as { code?: string }).code === 'ENOENT') return { artifact, check: 'keys', ok: false, detail: 'redis-server is not installed on the backup host' };
      const text = await readFile(log, 'utf8').catch(() => '');
      return { artifact, check: 'keys', ok: false, detail: `redis-server could not load the RDB:\n${lastLines(text)}` };
    }
    const recorded = (ctx.component.details ?? {}).keys;
    if (typeof recorded !== 'number') return { artifact, check: 'keys', ok: true, detail: `loaded ${keys} keys; key count not recorded in metadata.yml` };
    return { artifact, check: 'keys', ok: keys === recorded, detail: keys === recorded ? `${keys} keys as recorded` : `expected ${recorded} keys, the RDB loads ${keys}` };
  } finally {
    server.kill('SIGTERM');
    await server;
  }
}

/** Sum of keys over all databases once the RDB is loaded (INFO answers while loading, with loading:1); undefined when the server exits. */
async function keyspace(port: number, exited: () => boolean, signal: AbortSignal): Promise<number | undefined> {
  for (;;) {
    if (exited()) return undefined;
    const res = await execa('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'INFO'], { reject: false, stdin: 'ignore', cancelSignal: signal });
    if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'redis-cli is not installed on the backup host');
    const info = parseInfo(String(res.stdout));
    if (res.exitCode === 0 && info.loading === '0') return keyspaceKeys(info);
    await sleep(100, undefined, { signal });
  }
}
