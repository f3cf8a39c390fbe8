// Redis: a fresh BGSAVE on the source host, its RDB streamed into the snapshot and checked with
// redis-check-rdb on the backup host; with AOF on, the AOF directory is pulled as well.
// Everything goes through redis-cli on the source host; a password reaches it only as REDISCLI_AUTH,
// read from a private temp file by a constant script, so it never appears on a command line.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { RedisArtifact } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import type { Host } from '../remote/host';
import type { SecretFile } from '../remote/remote-command';
import { LifeboatError } from '../shared/errors';
import { rsyncExcludeArgs } from '../snapshot/deny-list';
import { streamToFile } from './capture-stream';
import { pullTree } from './pull-tree';
import type { SourceModule } from './types';

const AUTH_ENV = 'LIFEBOAT_REDIS_AUTH';
const AUTH_SCRIPT = `REDISCLI_AUTH=$(cat "$${AUTH_ENV}") || exit 70; export REDISCLI_AUTH; exec redis-cli "$@"`;
/** An error reply in redis-cli's raw output starts with its code (status replies like OK or PONG look alike, so the codes are listed). */
const ERROR_REPLY =
  /^(?:\(error\) )?(?:ERR|NOAUTH|WRONGPASS|NOPERM|LOADING|BUSY|MISCONF|READONLY|MASTERDOWN|OOM|NOREPLICAS|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|NOPROTO|EXECABORT|WRONGTYPE)(?: |$)/;
const CONFIG_KEYS = ['save', 'appendonly', 'dir', 'dbfilename', 'appenddirname', 'appendfilename'] as const;

export type RedisConfig = Partial<Record<(typeof CONFIG_KEYS)[number], string>>;

export function rdbFileName(a: RedisArtifact): string {
  return `database/${a.name}.rdb`;
}

export function aofDirName(a: RedisArtifact): string {
  return `database/${a.name}.aof`;
}

/** redis-cli argv; with a password, the constant script exports REDISCLI_AUTH from the secret file first. */
export function redisCliArgv(a: RedisArtifact, args: string[], withAuth: boolean): string[] {
  const cli = ['-h', a.host, '-p', String(a.port), ...args];
  return withAuth ? ['sh', '-c', AUTH_SCRIPT, 'lifeboat-redis', ...cli] : ['redis-cli', ...cli];
}

/** CONFIG GET's raw reply: name and value on alternating lines (a value may be empty, e.g. `save ""`). */
export function parseConfigGet(stdout: string): Record<string, string> {
  const lines = stdout.replace(/\r/g, '').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]!] = lines[i + 1]!;
  return out;
}

/** INFO's `key:value` lines (sections and blank lines skipped). */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Sum of `keys=` over the `dbN:` lines of INFO keyspace. */
export function keyspaceKeys(info: Record<string, string>): number {
  return Object.entries(info)
    .filter(([k]) => /^db\d+$/.test(k))
    .reduce((sum, [, v]) => sum + (Number(/(?:^|,)keys=(\d+)/.exec(v)?.[1]) || 0), 0);
}

/** Neither RDB snapshots nor AOF: the server keeps nothing worth backing up (a cache). */
export function isEphemeral(c: RedisConfig): boolean {
  return (c.save ?? '').trim() === '' && c.appendonly !== 'yes';
}

/** The AOF on the source host: Redis 7 keeps a directory (appenddirname), older versions a single file. */
export function aofPath(c: RedisConfig): string | undefined {
  if (c.appendonly !== 'yes' || !c.dir) return undefined;
  const name = c.appenddirname || c.appendfilename;
  return name ? join(c.dir, name) : undefined;
}

/** The error reply in redis-cli's output, if any (stdout's first line, or stderr for clients that print errors there). */
export function replyError(stdout: string, stderr: string): string | undefined {
  const first = stdout.split('\n', 1)[0]?.trim() ?? '';
  if (ERROR_REPLY.test(first)) return first.replace(/^\(error\) /, '');
  // "AUTH failed: …" alone is a warning: the command itself may still have succeeded.
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => ERROR_REPLY.test(l) && !l.startsWith('AUTH failed:'))
    ?.replace(/^\(error\) /, '');
}

export function classifyRedisFailure(label: string, a: RedisArtifact, what: string, exitCode: number, text: string): LifeboatError {
  const where = `redis ${a.name} (${a.host}:${a.port}) on ${label}`;
  const msg = text.trim().split('\n').slice(-5).join('\n');
  if (/NOAUTH|WRONGPASS|invalid password|NOPERM/.test(text)) return new LifeboatError('AuthFailed', `${what} on ${where}: authentication refused:\n${msg}`);
  if (/unknown command '?CONFIG|unknown command `CONFIG/i.test(text)) {
    return new LifeboatError('ConfigError', `${what} on ${where}: CONFIG is disabled or renamed on this server; Lifeboat needs it:\n${msg}`);
  }
  if (exitCode === 127 || /redis-cli: (command )?not found/.test(text)) return new LifeboatError('MissingTool', `redis-cli is not installed on ${label}`);
  return new LifeboatError('CommandFailed', `${what} on ${where} failed (exit ${exitCode}):\n${msg}`);
}

async function authFile(a: RedisArtifact): Promise<SecretFile | undefined> {
  if (!a.password) return undefined;
  return { env: AUTH_ENV, content: await resolveSecret(a.password, `password of redis artifact ${a.name}`) };
}

type Cli = (args: string[]) => Promise<string>;

/** A redis-cli runner bound to one artifact: returns stdout, throws classified errors (redis-cli exits 0 on error replies). */
async function redisCli(host: Host, a: RedisArtifact, signal: AbortSignal): Promise<Cli> {
  const secretFile = await authFile(a);
  return async (args) => {
    const res = await host.exec(redisCliArgv(a, args, !!secretFile), { secretFile, signal });
    const error = res.exitCode === 0 ? replyError(res.stdout, res.stderr) : `${res.stderr}\n${res.stdout}`;
    if (error !== undefined) throw classifyRedisFailure(host.label, a, args.slice(0, 2).join(' '), res.exitCode, error);
    return res.stdout;
  };
}

async function readConfig(cli: Cli): Promise<RedisConfig> {
  const config: RedisConfig = {};
  // One key per call: CONFIG GET takes several only since Redis 7, and `CONFIG GET *` would return requirepass.
  for (const key of CONFIG_KEYS) {
    const value = parseConfigGet(await cli(['CONFIG', 'GET', key]))[key];
    if (value !== undefined) config[key] = value;
  }
  return config;
}

/** A positive integer reply (LASTSAVE, TIME's seconds); anything else is an unexpected answer, not a time. */
async function seconds(cli: Cli, args: string[]): Promise<number> {
  const reply = await cli(args);
  const n = Number(reply.split('\n', 1)[0]);
  if (!Number.isInteger(n) || n <= 0) throw new LifeboatError('CommandFailed', `${args[0]}: unexpected reply ${JSON.stringify(reply.slice(0, 200))}`);
  return n;
}

const lastSave = (cli: Cli) => seconds(cli, ['LASTSAVE']);
const persistence = async (cli: Cli) => parseInfo(await cli(['INFO', 'persistence']));

interface SaveWait {
  cli: Cli;
  deadline: number;
  signal: AbortSignal;
  where: string;
  timeoutSeconds: number;
}

async function pause(w: SaveWait, ms = 250): Promise<void> {
  if (Date.now() > w.deadline) {
    throw new LifeboatError('CommandFailed', `BGSAVE on ${w.where} did not finish within ${w.timeoutSeconds} s (saveTimeoutSeconds)`);
  }
  await sleep(ms, undefined, { signal: w.signal });
}

/** Until no fork child (RDB save, AOF rewrite, module fork) runs: any of them makes BGSAVE refuse to start. */
async function waitIdle(w: SaveWait): Promise<void> {
  for (;;) {
    const p = await persistence(w.cli);
    if (![p.rdb_bgsave_in_progress, p.aof_rewrite_in_progress, p.module_fork_in_progress].includes('1')) return;
    await pause(w);
  }
}

/** Starts a BGSAVE of our own; one already running began before our request, so wait it out and ask again. */
async function startBgsave(w: SaveWait): Promise<void> {
  for (;;) {
    let reply: string;
    try {
      reply = await w.cli(['BGSAVE']);
    } catch (err) {
      if (!/already in progress|child process is active|rewriting in progress/i.test((err as Error).message)) throw err;
      await waitIdle(w);
      continue;
    }
    if (/Background saving started/i.test(reply)) return;
    throw new LifeboatError('CommandFailed', `BGSAVE on ${w.where}: unexpected reply ${JSON.stringify(reply.trim())}`);
  }
}

/** Polls until our save finished; returns the new LASTSAVE. */
async function waitForSave(w: SaveWait, before: number): Promise<number> {
  for (;;) {
    const p = await persistence(w.cli);
    if (p.rdb_bgsave_in_progress === '0') {
      if (p.rdb_last_bgsave_status === 'err') {
        throw new LifeboatError('CommandFailed', `BGSAVE on ${w.where} failed (rdb_last_bgsave_status:err); see the Redis log`);
      }
      const now = await lastSave(w.cli);
      if (now > before) return now;
    }
    await pause(w);
  }
}

/** A completed BGSAVE started by this call. LASTSAVE has one-second resolution, so a save in the current second is waited past. */
async function freshSave(cli: Cli, a: RedisArtifact, where: string, signal: AbortSignal): Promise<number> {
  const w: SaveWait = { cli, signal, where, timeoutSeconds: a.saveTimeoutSeconds, deadline: Date.now() + a.saveTimeoutSeconds * 1000 };
  const before = await lastSave(cli);
  const serverNow = await seconds(cli, ['TIME']);
  if (before >= serverNow) await sleep(1100, undefined, { signal });
  await startBgsave(w);
  return waitForSave(w, before);
}

export type RdbCheck = 'ok' | 'unavailable' | 'unsupported-rdb-version';

/** redis-check-rdb on the backup host. A missing tool, or one older than the file's format, is recorded, not fatal. */
export async function checkRdb(path: string, signal: AbortSignal): Promise<RdbCheck> {
  const res = await execa('redis-check-rdb', [path], { reject: false, all: true, stdin: 'ignore', cancelSignal: signal });
  if ((res as { code?: string }).code === 'ENOENT') return 'unavailable';
  if (res.isCanceled) throw new Error('redis-check-rdb was cancelled');
  const out = String(res.all ?? '');
  if (res.exitCode === 0 && /RDB looks OK/.test(out)) return 'ok';
  if (/Can't handle RDB format version/i.test(out)) return 'unsupported-rdb-version';
  const report = out.trim().split('\n').slice(-8).join('\n');
  throw new LifeboatError('IntegrityCheckFailed', `redis-check-rdb rejects the captured RDB (exit ${res.exitCode}):\n${report}`);
}

async function captureRdb(host: Host, a: RedisArtifact, c: RedisConfig, snapshotDir: string, signal: AbortSignal, onBytes: (n: number) => void) {
  if (!c.dir?.startsWith('/') || !c.dbfilename) {
    throw new LifeboatError('CommandFailed', `redis ${a.name} on ${host.label} reports no usable dir/dbfilename (${c.dir}, ${c.dbfilename})`);
  }
  const source = join(c.dir, c.dbfilename);
  const file = await streamToFile(host, ['cat', '--', source], join(snapshotDir, rdbFileName(a)), { signal, onBytes });
  try {
    if (file.exitCode !== 0) {
      const code = /No such file/.test(file.stderr) ? 'MissingPath' : 'CommandFailed';
      throw new LifeboatError(code, `reading ${source} on ${host.label} failed (exit ${file.exitCode}): ${file.stderr.trim()}`);
    }
    const check = await checkRdb(file.partial, signal);
    await file.commit();
    return { bytes: file.bytes, check };
  } catch (err) {
    await file.discard();
    throw err;
  }
}

export const redis: SourceModule<RedisArtifact> = {
  // rsync is only needed with AOF on, which only the server knows; pullTree reports it missing then.
  requiredTools: () => ['redis-cli'],
  requiredPaths: () => [],

  async estimateBytes(host, a, signal) {
    const cli = await redisCli(host, a, signal);
    const c = await readConfig(cli);
    if (isEphemeral(c)) return 0;
    // used_memory bounds the RDB (which is compressed); the AOF directory comes on top.
    const used = Number(parseInfo(await cli(['INFO', 'memory'])).used_memory) || 0;
    const aof = aofPath(c);
    if (!aof) return used;
    const du = await host.exec(['du', '-s', '-k', '--', aof], { signal });
    return used + (du.exitCode === 0 ? (Number(du.stdout.split('\t')[0]) || 0) * 1024 : 0);
  },

  async capture({ host, artifact: a, snapshotDir, mirrorDir, denyList, signal, progress, quiet }) {
    const cli = await redisCli(host, a, signal);
    const c = await readConfig(cli);
    if (isEphemeral(c)) {
      return { status: 'skipped', paths: [], bytes: 0, details: { ephemeral: true, reason: 'save is empty and appendonly is no: the server persists nothing' } };
    }
    const where = `redis ${a.name} (${a.host}:${a.port}) on ${host.label}`;
    progress({ artifact: a.name, phase: 'bgsave' });
    // BGSAVE is bounded by saveTimeoutSeconds; allow that much silence (plus a margin for the polling).
    const saved = await quiet('redis bgsave', a.saveTimeoutSeconds * 1000 + 60_000, () => freshSave(cli, a, where, signal));
    const rdb = await captureRdb(host, a, c, snapshotDir, signal, (bytes) => progress({ artifact: a.name, bytes }));
    const info = parseInfo(await cli(['INFO']));
    const aof = aofPath(c);
    const paths = [rdbFileName(a)];
    let aofBytes = 0;
    if (aof) {
      // The AOF keeps growing while it is copied; the checked RDB is the consistent copy, the AOF a bonus.
      const stats = await pullTree(host, {
        paths: [aof],
        mirrorDir,
        snapshotDir,
        rel: aofDirName(a),
        excludeArgs: rsyncExcludeArgs(denyList),
        signal,
        onProgress: (line) => progress({ artifact: a.name, rsync: line }),
      });
      paths.push(aofDirName(a));
      aofBytes = stats.totalFileSize;
    }
    return {
      paths,
      bytes: rdb.bytes + aofBytes,
      details: {
        rdb_bytes: rdb.bytes,
        keys: keyspaceKeys(info),
        redis_check_rdb: rdb.check,
        aof: !!aof,
        ...(aof ? { aof_path: aof, aof_bytes: aofBytes } : {}),
        lastsave: new Date(saved * 1000).toISOString(),
        ...(info.redis_version ? { redis_version: info.redis_version } : {}),
      },
    };
  },
};
