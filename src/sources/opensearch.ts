// OpenSearch: a snapshot into a filesystem repository on the source host, then that repository directory
// pulled with rsync. The HTTP API is called with curl on the source host (it usually listens only there);
// credentials reach curl only through a private config file (`-K`), never its command line.
import type { OpensearchArtifact } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import type { Host } from '../remote/host';
import type { SecretFile } from '../remote/remote-command';
import { LifeboatError } from '../shared/errors';
import { rsyncExcludeArgs } from '../snapshot/deny-list';
import { pullTree } from './pull-tree';
import type { SourceModule } from './types';

const CURL_ENV = 'LIFEBOAT_CURL_CONFIG';
const CURL_AUTH_SCRIPT = `exec curl -K "$${CURL_ENV}" "$@"`;
const SNAPSHOT_PREFIX = 'lifeboat-';
const STAMP = /-\d{8}t\d{6}$/;

export interface HttpResponse {
  status: number;
  body: string;
}

export function opensearchDir(a: OpensearchArtifact): string {
  return `opensearch/${a.name}`;
}

/** OpenSearch's snapshot name for a Lifeboat snapshot: lowercase, none of `\/*?"<>|,# `. */
export function opensearchSnapshotName(snapshot: string): string {
  return `${SNAPSHOT_PREFIX}${snapshot.toLowerCase().replace(/[\\/*?"<>|,# ]/g, '-')}`;
}

/** A double-quoted curl config value: `\` and `"` escaped, control characters as curl's \t \n \r \v. */
export function curlConfigQuote(value: string): string {
  const esc: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\v': '\\v' };
  return `"${value.replace(/[\\"\t\n\r\v]/g, (c) => esc[c]!)}"`;
}

export function curlConfig(username: string, password: string): string {
  return `user = ${curlConfigQuote(`${username}:${password}`)}\n`;
}

/** curl argv; `-w` appends the status code on its own last line. `-g`: brackets in a URL are not globs. */
export function curlArgv(method: string, url: string, body: string | undefined, withConfig: boolean, maxTimeSeconds?: number): string[] {
  const args = ['-sS', '-g', '-X', method, '--connect-timeout', '15', '-H', 'Accept: application/json', '-w', '\n%{http_code}'];
  if (maxTimeSeconds) args.push('--max-time', String(maxTimeSeconds));
  if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data-raw', body);
  args.push('--url', url);
  return withConfig ? ['sh', '-c', CURL_AUTH_SCRIPT, 'lifeboat-curl', ...args] : ['curl', ...args];
}

export function parseCurlOutput(stdout: string): HttpResponse {
  const i = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(i + 1).trim()) || 0, body: i < 0 ? '' : stdout.slice(0, i) };
}

interface SnapshotInfo {
  snapshot: string;
  state?: string;
  start_time_in_millis?: number;
}

/**
 * This plan's Lifeboat snapshots (`lifeboat-<prefix>-<stamp>`, same prefix as `current`) beyond the newest
 * `keep`, counting `current`, which is always kept. Other snapshots in the repository are never touched.
 */
export function snapshotsToDelete(all: SnapshotInfo[], keep: number, current: string): string[] {
  if (!current.startsWith(SNAPSHOT_PREFIX) || !STAMP.test(current)) return [];
  const family = current.replace(STAMP, '');
  return all
    .filter((s) => s.snapshot !== current && STAMP.test(s.snapshot) && s.snapshot.replace(STAMP, '') === family)
    .sort((x, y) => (y.start_time_in_millis ?? 0) - (x.start_time_in_millis ?? 0) || y.snapshot.localeCompare(x.snapshot))
    .slice(Math.max(0, keep - 1))
    .map((s) => s.snapshot);
}

/** `[index][shard]: reason` for each failed shard of a snapshot. */
export function shardFailures(snapshot: { failures?: Array<{ index?: string; shard_id?: number; reason?: string }> }): string[] {
  return (snapshot.failures ?? []).map((f) => `${f.index ?? '?'}[${f.shard_id ?? '?'}]: ${f.reason ?? 'unknown'}`);
}

interface OsError {
  type?: string;
  reason?: string;
  caused_by?: OsError;
  root_cause?: OsError[];
}

function errorOf(body: string): OsError | undefined {
  try {
    const e = (JSON.parse(body) as { error?: OsError | string }).error;
    return typeof e === 'string' ? { reason: e } : e;
  } catch {
    return undefined;
  }
}

/** Every type and reason in an OpenSearch error, for matching and messages. */
export function errorText(body: string): string {
  const parts: string[] = [];
  const walk = (e: OsError | undefined) => {
    if (!e) return;
    if (e.type || e.reason) parts.push(`${e.type ?? 'error'}: ${e.reason ?? ''}`);
    e.root_cause?.forEach(walk);
    walk(e.caused_by);
  };
  walk(errorOf(body));
  return [...new Set(parts)].join('; ') || body.trim().slice(0, 500);
}

export function classifyHttpFailure(what: string, res: HttpResponse): LifeboatError {
  const text = errorText(res.body);
  if (res.status === 401 || res.status === 403) return new LifeboatError('AuthFailed', `${what}: HTTP ${res.status}: ${text}`);
  if (/repository_exception/.test(text) && /path\.repo/.test(text)) {
    return new LifeboatError('ConfigError', `${what}: repositoryPath must be under OpenSearch's path.repo: ${text}`);
  }
  if (/index_not_found_exception/.test(text)) return new LifeboatError('ConfigError', `${what}: ${text}`);
  return new LifeboatError('CommandFailed', `${what}: HTTP ${res.status}: ${text}`);
}

type Http = (method: string, path: string, body?: unknown, maxTimeSeconds?: number) => Promise<HttpResponse>;

async function credentials(a: OpensearchArtifact): Promise<SecretFile | undefined> {
  if (!a.username && !a.password) return undefined;
  if (!a.username) throw new LifeboatError('ConfigError', `opensearch artifact ${a.name}: a password needs a username`);
  if (a.username.includes(':')) throw new LifeboatError('ConfigError', `opensearch artifact ${a.name}: a username cannot contain ":" (basic auth)`);
  const password = a.password ? await resolveSecret(a.password, `password of opensearch artifact ${a.name}`) : '';
  return { env: CURL_ENV, content: curlConfig(a.username, password) };
}

/** An HTTP client bound to one artifact; throws on transport failures, returns any HTTP status. */
async function httpClient(host: Host, a: OpensearchArtifact, signal: AbortSignal): Promise<Http> {
  const secretFile = await credentials(a);
  const base = a.url.replace(/\/+$/, '');
  return async (method, path, body, maxTime = 300) => {
    const argv = curlArgv(method, base + path, body === undefined ? undefined : JSON.stringify(body), !!secretFile, maxTime || undefined);
    const res = await host.exec(argv, { secretFile, signal });
    if (res.exitCode === 0) return parseCurlOutput(res.stdout);
    const msg = `curl ${method} ${base}${path} on ${host.label} failed (exit ${res.exitCode}): ${res.stderr.trim()}`;
    if (res.exitCode === 127) throw new LifeboatError('MissingTool', `curl is not installed on ${host.label}`);
    // 60/77: the certificate is not trusted; retrying will not change that.
    if (res.exitCode === 60 || res.exitCode === 77) throw new LifeboatError('ConfigError', msg);
    throw new LifeboatError('CommandFailed', msg);
  };
}

const json = <T>(res: HttpResponse): T => JSON.parse(res.body) as T;

/** Registers the fs repository on first use; an existing one must point at repositoryPath. Returns whether it was registered now. */
async function ensureRepository(http: Http, a: OpensearchArtifact): Promise<boolean> {
  const path = `/_snapshot/${a.repository}`;
  const got = await http('GET', path);
  if (got.status === 200) {
    const repo = json<Record<string, { type?: string; settings?: { location?: string } }>>(got)[a.repository];
    const location = repo?.settings?.location?.replace(/\/+$/, '');
    if (repo?.type !== 'fs' || location !== a.repositoryPath.replace(/\/+$/, '')) {
      throw new LifeboatError(
        'ConfigError',
        `snapshot repository ${a.repository} exists as ${repo?.type ?? '?'} at ${location ?? '?'}, not fs at ${a.repositoryPath}`,
      );
    }
    return false;
  }
  if (got.status !== 404) throw classifyHttpFailure(`GET ${path}`, got);
  const put = await http('PUT', path, { type: 'fs', settings: { location: a.repositoryPath } });
  if (put.status !== 200) throw classifyHttpFailure(`registering snapshot repository ${a.repository}`, put);
  return true;
}

interface SnapshotResult {
  snapshot: string;
  state: string;
  indices?: string[];
  shards?: { total: number; successful: number; failed: number };
  failures?: Array<{ index?: string; shard_id?: number; reason?: string }>;
}

/** Creates the snapshot and waits for it. One left by an earlier attempt of this capture is replaced. */
/** How long an OpenSearch snapshot (wait_for_completion) may take. */
export const OPENSEARCH_SNAPSHOT_BOUND_MS = 3 * 3_600_000;

async function createSnapshot(http: Http, a: OpensearchArtifact, name: string): Promise<SnapshotResult> {
  const path = `/_snapshot/${a.repository}/${encodeURIComponent(name)}`;
  const body = { indices: a.indices.join(','), include_global_state: false };
  let res = await http('PUT', `${path}?wait_for_completion=true`, body, 0);
  if (res.status === 400 && /invalid_snapshot_name_exception/.test(res.body) && /already exists/.test(res.body)) {
    const del = await http('DELETE', path);
    if (del.status !== 200) throw classifyHttpFailure(`deleting the earlier attempt's snapshot ${name}`, del);
    res = await http('PUT', `${path}?wait_for_completion=true`, body, 0);
  }
  if (res.status !== 200) throw classifyHttpFailure(`creating snapshot ${name} in ${a.repository}`, res);
  const snap = json<{ snapshot: SnapshotResult }>(res).snapshot;
  if (snap.state !== 'SUCCESS') {
    const failed = shardFailures(snap);
    throw new LifeboatError('CommandFailed', `snapshot ${name} ended ${snap.state}${failed.length ? `; failed shards: ${failed.join('; ')}` : ''}`, {
      failed_shards: failed,
    });
  }
  return snap;
}

/** Deletes this plan's older snapshots beyond keepSnapshots; failures are reported, the capture already succeeded. */
async function pruneSnapshots(http: Http, a: OpensearchArtifact, current: string): Promise<{ deleted: string[]; error?: string }> {
  const list = await http('GET', `/_snapshot/${a.repository}/_all`);
  if (list.status !== 200) return { deleted: [], error: classifyHttpFailure('listing snapshots', list).message };
  const doomed = snapshotsToDelete(json<{ snapshots: SnapshotInfo[] }>(list).snapshots ?? [], a.keepSnapshots, current);
  const deleted: string[] = [];
  for (const name of doomed) {
    const res = await http('DELETE', `/_snapshot/${a.repository}/${encodeURIComponent(name)}`);
    if (res.status !== 200) return { deleted, error: classifyHttpFailure(`deleting snapshot ${name}`, res).message };
    deleted.push(name);
  }
  return { deleted };
}

export const opensearch: SourceModule<OpensearchArtifact> = {
  requiredTools: () => ['curl', 'rsync'],
  requiredPaths: () => [],

  async estimateBytes(host, a, signal) {
    const http = await httpClient(host, a, signal);
    const stats = await http('GET', `/${a.indices.map(encodeURIComponent).join(',')}/_stats/store`);
    if (stats.status !== 200) throw classifyHttpFailure('reading index sizes', stats);
    const primaries = json<{ _all?: { primaries?: { store?: { size_in_bytes?: number } } } }>(stats)._all?.primaries?.store?.size_in_bytes ?? 0;
    // What the repository holds already is copied too; the new snapshot adds at most the primaries.
    const du = await host.exec(['du', '-s', '-k', '--', a.repositoryPath], { signal });
    return primaries + (du.exitCode === 0 ? (Number(du.stdout.split('\t')[0]) || 0) * 1024 : 0);
  },

  async capture({ host, artifact: a, snapshot, snapshotDir, mirrorDir, denyList, signal, progress, quiet }) {
    const http = await httpClient(host, a, signal);
    const name = opensearchSnapshotName(snapshot);
    const registered = await ensureRepository(http, a);
    progress({ artifact: a.name, phase: 'snapshot', opensearch_snapshot: name });
    // wait_for_completion answers only at the end: silent within its own bound.
    const snap = await quiet('opensearch snapshot', OPENSEARCH_SNAPSHOT_BOUND_MS, () => createSnapshot(http, a, name));
    const rel = opensearchDir(a);
    const stats = await pullTree(host, {
      paths: [a.repositoryPath],
      mirrorDir,
      snapshotDir,
      rel,
      excludeArgs: rsyncExcludeArgs(denyList),
      signal,
      onProgress: (line) => progress({ artifact: a.name, rsync: line }),
    });
    const pruned = await pruneSnapshots(http, a, name);
    return {
      paths: [rel],
      bytes: stats.totalFileSize,
      details: {
        repository: a.repository,
        repository_path: a.repositoryPath,
        repository_registered: registered,
        opensearch_snapshot: name,
        indices: [...(snap.indices ?? [])].sort(),
        shards: snap.shards ?? null,
        deleted_snapshots: pruned.deleted,
        ...(pruned.error ? { prune_error: pruned.error } : {}),
        rsync: stats,
      },
    };
  },
};
