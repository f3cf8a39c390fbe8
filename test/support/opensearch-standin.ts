// A stand-in, not OpenSearch: no OpenSearch can run on this machine, so this small HTTP server answers
// exactly the calls src/sources/opensearch.ts makes, with OpenSearch's status codes and error shapes:
//   GET/PUT /_snapshot/<repo>, PUT/DELETE /_snapshot/<repo>/<snap>, GET /_snapshot/<repo>/_all,
//   GET /<indices>/_stats/store; 401 without valid basic auth when `auth` is set.
// A snapshot writes plausible fs-repository files into the location (index-N, index.latest,
// snap-<uuid>.dat, meta-<uuid>.dat, indices/<id>/<shard>/…) and DELETE removes what only it referenced.
// Its file formats are not OpenSearch's (no SMILE, no codec footers): nothing here can be restored.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';

export interface StandinCall {
  method: string;
  /** Path with query string. */
  path: string;
  body?: unknown;
  /** Basic-auth user name sent, if any. */
  user?: string;
}

export interface StandinOptions {
  pathRepo: string[];
  auth?: { username: string; password: string };
  /** Index name → number of primary shards. */
  indices?: Record<string, number>;
  /** Indices whose shard 0 fails during a snapshot (state PARTIAL). */
  failIndices?: string[];
}

export interface OpensearchStandin {
  url: string;
  calls: StandinCall[];
  stop(): Promise<void>;
}

interface Snap {
  name: string;
  uuid: string;
  indices: string[];
  state: 'SUCCESS' | 'PARTIAL';
  start: number;
  end: number;
  shards: { total: number; failed: number; successful: number };
  failures: Array<Record<string, unknown>>;
}

interface Repo {
  location: string;
  uuid: string;
  gen: number;
  snapshots: Snap[];
  /** Index name → repository index id (stable while any snapshot holds the index). */
  indexIds: Map<string, string>;
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> };

const VERSION = '2.11.0';

function osError(status: number, type: string, reason: string, causedBy?: { type: string; reason: string }): Reply {
  const root = causedBy ?? { type, reason };
  return { status, body: { error: { root_cause: [root], type, reason, ...(causedBy ? { caused_by: causedBy } : {}) }, status } };
}

const missingRepo = (repo: string) => osError(404, 'repository_missing_exception', `[${repo}] missing`);

/** OpenSearch's index expressions: comma-separated names and `*` wildcards; a missing concrete name is an error. */
function resolveIndices(expr: string, known: string[]): string[] | { missing: string } {
  const out = new Set<string>();
  for (const part of expr.split(',').map((p) => p.trim()).filter(Boolean)) {
    if (part.includes('*')) {
      const re = new RegExp(`^${part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
      known.filter((i) => re.test(i) && !i.startsWith('.')).forEach((i) => out.add(i));
    } else if (known.includes(part)) out.add(part);
    else return { missing: part };
  }
  return [...out].sort();
}

export async function startOpensearchStandin(opts: StandinOptions): Promise<OpensearchStandin> {
  const indices = opts.indices ?? { 'app-logs': 1, users: 2 };
  const repos = new Map<string, Repo>();
  const calls: StandinCall[] = [];

  const summary = (s: Snap) => ({
    snapshot: s.name,
    uuid: s.uuid,
    version_id: 136317827,
    version: VERSION,
    indices: s.indices,
    data_streams: [],
    include_global_state: false,
    state: s.state,
    start_time: new Date(s.start).toISOString(),
    start_time_in_millis: s.start,
    end_time: new Date(s.end).toISOString(),
    end_time_in_millis: s.end,
    duration_in_millis: s.end - s.start,
    failures: s.failures,
    shards: s.shards,
  });

  /** index-N (the repository's root listing) and index.latest (N as a big-endian long), dropping index-(N-1). */
  async function writeRepositoryData(repo: Repo): Promise<void> {
    const previous = repo.gen;
    repo.gen += 1;
    const data = {
      min_version: '2.0.0',
      uuid: repo.uuid,
      cluster_id: 'standin-cluster',
      snapshots: repo.snapshots.map((s) => ({ name: s.name, uuid: s.uuid, state: s.state === 'SUCCESS' ? 1 : 2, version: VERSION })),
      indices: Object.fromEntries(
        [...repo.indexIds].map(([name, id]) => [name, { id, snapshots: repo.snapshots.filter((s) => s.indices.includes(name)).map((s) => s.uuid) }]),
      ),
    };
    await writeFile(join(repo.location, `index-${repo.gen}`), JSON.stringify(data));
    const latest = Buffer.alloc(8);
    latest.writeBigInt64BE(BigInt(repo.gen));
    await writeFile(join(repo.location, 'index.latest'), latest);
    if (previous >= 0) await rm(join(repo.location, `index-${previous}`), { force: true });
  }

  async function writeSnapshotFiles(repo: Repo, s: Snap): Promise<void> {
    for (const index of s.indices) {
      let id = repo.indexIds.get(index);
      if (!id) repo.indexIds.set(index, (id = randomUUID().replace(/-/g, '').slice(0, 22)));
      const dir = join(repo.location, 'indices', id);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `meta-${s.uuid}.dat`), JSON.stringify({ index, settings: { number_of_shards: indices[index] } }));
      for (let shard = 0; shard < (indices[index] ?? 1); shard++) {
        const shardDir = join(dir, String(shard));
        await mkdir(shardDir, { recursive: true });
        // A base segment shared by every snapshot of the shard (incremental snapshots), plus one new per snapshot.
        await writeFile(join(shardDir, '__base'), randomBytes(8192), { flag: 'wx' }).catch(() => {});
        await writeFile(join(shardDir, `__${s.uuid}`), randomBytes(2048));
        await writeFile(join(shardDir, `snap-${s.uuid}.dat`), JSON.stringify({ name: s.name, index_version: 1, files: ['__base', `__${s.uuid}`] }));
      }
    }
    await writeFile(join(repo.location, `snap-${s.uuid}.dat`), JSON.stringify(summary(s)));
    await writeFile(join(repo.location, `meta-${s.uuid}.dat`), JSON.stringify({ cluster_uuid: 'standin-cluster', version: VERSION }));
  }

  async function removeSnapshotFiles(repo: Repo, s: Snap): Promise<void> {
    await rm(join(repo.location, `snap-${s.uuid}.dat`), { force: true });
    await rm(join(repo.location, `meta-${s.uuid}.dat`), { force: true });
    for (const index of s.indices) {
      const id = repo.indexIds.get(index);
      if (!id) continue;
      const dir = join(repo.location, 'indices', id);
      if (!repo.snapshots.some((o) => o.indices.includes(index))) {
        await rm(dir, { recursive: true, force: true });
        repo.indexIds.delete(index);
        continue;
      }
      await rm(join(dir, `meta-${s.uuid}.dat`), { force: true });
      for (let shard = 0; shard < (indices[index] ?? 1); shard++) {
        await rm(join(dir, String(shard), `__${s.uuid}`), { force: true });
        await rm(join(dir, String(shard), `snap-${s.uuid}.dat`), { force: true });
      }
    }
  }

  /** fs repositories must resolve under path.repo (relative locations resolve against its first entry). */
  function underPathRepo(location: string): string | undefined {
    const first = opts.pathRepo[0];
    const abs = isAbsolute(location) ? resolve(location) : first ? resolve(first, location) : undefined;
    if (!abs) return undefined;
    return opts.pathRepo.some((r) => abs === resolve(r) || abs.startsWith(`${resolve(r)}/`)) ? abs : undefined;
  }

  async function putRepository(name: string, body: unknown): Promise<Reply> {
    const b = body as { type?: string; settings?: { location?: string } } | undefined;
    if (b?.type !== 'fs') return osError(500, 'repository_exception', `[${name}] repository type [${b?.type}] does not exist`);
    const location = b.settings?.location;
    if (!location) return osError(500, 'repository_exception', `[${name}] failed to create repository`, { type: 'repository_exception', reason: `[${name}] missing location` });
    const abs = underPathRepo(location);
    if (!abs) {
      const why = opts.pathRepo.length
        ? `[${name}] location [${location}] doesn't match any of the locations specified by path.repo`
        : `[${name}] location [${location}] doesn't match any of the locations specified by path.repo because this setting is empty`;
      return osError(500, 'repository_exception', `[${name}] failed to create repository`, { type: 'repository_exception', reason: why });
    }
    await mkdir(abs, { recursive: true });
    const existing = repos.get(name);
    repos.set(name, existing ? { ...existing, location: abs } : { location: abs, uuid: randomUUID(), gen: -1, snapshots: [], indexIds: new Map() });
    return { status: 200, body: { acknowledged: true } };
  }

  async function createSnapshot(repo: Repo, repoName: string, name: string, body: unknown, wait: boolean): Promise<Reply> {
    if (repo.snapshots.some((s) => s.name === name)) {
      return osError(400, 'invalid_snapshot_name_exception', `[${repoName}:${name}] Invalid snapshot name [${name}], snapshot with the same name already exists`);
    }
    const b = (body ?? {}) as { indices?: string };
    const resolved = resolveIndices(b.indices ?? '*', Object.keys(indices));
    if ('missing' in resolved) return osError(404, 'index_not_found_exception', `no such index [${resolved.missing}]`);
    const start = Date.now();
    const failing = resolved.filter((i) => opts.failIndices?.includes(i));
    const total = resolved.reduce((n, i) => n + (indices[i] ?? 1), 0);
    const s: Snap = {
      name,
      uuid: randomUUID().replace(/-/g, '').slice(0, 22),
      indices: resolved,
      state: failing.length ? 'PARTIAL' : 'SUCCESS',
      start,
      end: start + 5,
      shards: { total, failed: failing.length, successful: total - failing.length },
      failures: failing.map((index) => ({
        index,
        index_uuid: index,
        shard_id: 0,
        reason: 'IndexShardSnapshotFailedException[stand-in shard failure]',
        node_id: 'standin-node',
        status: 'INTERNAL_SERVER_ERROR',
      })),
    };
    repo.snapshots.push(s);
    await writeSnapshotFiles(repo, s);
    await writeRepositoryData(repo);
    return { status: 200, body: wait ? { snapshot: summary(s) } : { accepted: true } };
  }

  async function deleteSnapshot(repo: Repo, repoName: string, name: string): Promise<Reply> {
    const s = repo.snapshots.find((x) => x.name === name);
    if (!s) return osError(404, 'snapshot_missing_exception', `[${repoName}:${name}] is missing`);
    repo.snapshots = repo.snapshots.filter((x) => x !== s);
    await removeSnapshotFiles(repo, s);
    await writeRepositoryData(repo);
    return { status: 200, body: { acknowledged: true } };
  }

  function storeStats(expr: string): Reply {
    const resolved = resolveIndices(decodeURIComponent(expr), Object.keys(indices));
    if ('missing' in resolved) return osError(404, 'index_not_found_exception', `no such index [${resolved.missing}]`);
    const size = (i: string) => (indices[i] ?? 1) * 10_240;
    const total = resolved.reduce((n, i) => n + size(i), 0);
    const store = (bytes: number) => ({ store: { size_in_bytes: bytes, reserved_in_bytes: 0 } });
    return {
      status: 200,
      body: {
        _shards: { total, successful: total, failed: 0 },
        _all: { primaries: store(total), total: store(total) },
        indices: Object.fromEntries(resolved.map((i) => [i, { uuid: i, primaries: store(size(i)), total: store(size(i)) }])),
      },
    };
  }

  async function route(method: string, url: URL, body: unknown): Promise<Reply> {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === '_snapshot' && parts[1]) {
      const [, repoName, snap] = parts;
      const repo = repos.get(repoName!);
      if (parts.length === 2 && method === 'GET') {
        return repo ? { status: 200, body: { [repoName!]: { type: 'fs', settings: { location: repo.location } } } } : missingRepo(repoName!);
      }
      if (parts.length === 2 && method === 'PUT') return putRepository(repoName!, body);
      if (parts.length === 3 && snap) {
        if (!repo) return missingRepo(repoName!);
        if (method === 'GET' && snap === '_all') return { status: 200, body: { snapshots: repo.snapshots.map(summary) } };
        if (method === 'PUT') return createSnapshot(repo, repoName!, snap, body, url.searchParams.get('wait_for_completion') === 'true');
        if (method === 'DELETE') return deleteSnapshot(repo, repoName!, snap);
      }
    }
    if (parts.length === 3 && parts[1] === '_stats' && parts[2] === 'store' && method === 'GET') return storeStats(url.pathname.split('/')[1]!);
    return { status: 400, body: { error: `no handler found for uri [${url.pathname}] and method [${method}]` } };
  }

  /** The user name if the request carries the configured basic credentials; null if it must be refused. */
  function authorize(req: IncomingMessage): { user?: string } | null {
    const header = req.headers.authorization ?? '';
    const decoded = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString('utf8') : undefined;
    const user = decoded?.slice(0, Math.max(0, decoded.indexOf(':'))) || undefined;
    if (!opts.auth) return { user };
    return decoded === `${opts.auth.username}:${opts.auth.password}` ? { user } : null;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = raw || undefined;
    try {
      if (raw) body = JSON.parse(raw);
    } catch {
      /* kept as text */
    }
    const url = new URL(req.url ?? '/', 'http://standin');
    const method = req.method ?? 'GET';
    const who = authorize(req);
    calls.push({ method, path: url.pathname + url.search, ...(body !== undefined ? { body } : {}), ...(who?.user ? { user: who.user } : {}) });
    if (!who) {
      // The security plugin's answer: plain text, with a challenge.
      res.writeHead(401, { 'content-type': 'text/plain; charset=UTF-8', 'www-authenticate': 'Basic realm="OpenSearch Security"' });
      res.end('Unauthorized');
      return;
    }
    if (raw && typeof body === 'string') {
      const r = osError(400, 'parse_exception', 'request body is required to be valid JSON');
      res.writeHead(r.status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(r.body));
      return;
    }
    const r = await route(method, url, body);
    res.writeHead(r.status, { 'content-type': 'application/json; charset=UTF-8', ...r.headers });
    res.end(JSON.stringify(r.body));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      const r = osError(500, 'exception', err.message);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    stop: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
