// The bench's reference workload, generated from fixed seeds: the same bytes on every machine and every run.
//   - a file tree per host: large files (4–32 MiB, ~65 % of the bytes) and small ones (0.5–128 KiB, log-uniform,
//     200 per directory), about half text-like (logs, JSON, CSV: compressible, unique) and half random (media,
//     already-compressed data), plus a `cache/` directory (10 % extra) that every method excludes;
//   - tiny hosts: a handful of small config files each;
//   - a PostgreSQL database with one wide-ish table (`items`) sized by --db-mib of plain pg_dump output;
//   - changes: 1 % of each tree's files rewritten (same size, new content) and 1000 rows updated, per round.
// Random bytes come from AES-256-CTR keyed by the seed (fast and deterministic); choices from sfc32.
import { createCipheriv, createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';

const MiB = 1024 * 1024;

/** sfc32 seeded from SHA-256 of the seed string: small, fast, good enough for picking sizes and words. */
export function rng(seed: string): () => number {
  const h = createHash('sha256').update(seed).digest();
  let a = h.readUInt32LE(0), b = h.readUInt32LE(4), c = h.readUInt32LE(8), d = h.readUInt32LE(12);
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** `size` pseudo-random bytes (incompressible), the same for the same seed. */
export function randomBytesFor(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-256-ctr', key, iv).update(Buffer.alloc(size));
}

const WORDS = ['backup', 'restore', 'order', 'invoice', 'customer', 'shipment', 'payment', 'session', 'upload', 'report', 'cache', 'queue', 'worker', 'deploy', 'health', 'metrics'];
const PATHS = ['/api/v1/orders', '/api/v1/items', '/login', '/static/app.js', '/api/v1/customers', '/healthz', '/admin/reports', '/uploads'];
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];

/** Text like an app's logs, JSON exports and CSV: compresses 3–6× with zstd, but no two lines repeat. */
export function textBytesFor(seed: string, size: number): Buffer {
  const r = rng(`text:${seed}`);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const hex = () => Math.floor(r() * 0xffffffff).toString(16).padStart(8, '0');
  const style = Math.floor(r() * 3);
  const parts: string[] = [];
  let n = 0;
  let t = Date.UTC(2026, 0, 1) + Math.floor(r() * 3e10);
  while (n < size) {
    t += Math.floor(r() * 5000);
    let line: string;
    if (style === 0) {
      line = `${new Date(t).toISOString()} ${pick(LEVELS)} req=${hex()}${hex()} ${pick(['GET', 'POST', 'PUT'])} ${pick(PATHS)}/${Math.floor(r() * 100000)} status=${pick([200, 200, 200, 201, 204, 302, 404, 500])} bytes=${Math.floor(r() * 65536)} ms=${(r() * 900).toFixed(1)} user=${pick(WORDS)}-${Math.floor(r() * 5000)}\n`;
    } else if (style === 1) {
      line = `{"id":${Math.floor(r() * 1e9)},"type":"${pick(WORDS)}","ref":"${hex()}-${hex()}","amount":${(r() * 10000).toFixed(2)},"qty":${Math.floor(r() * 50)},"tags":["${pick(WORDS)}","${pick(WORDS)}"],"at":"${new Date(t).toISOString()}"}\n`;
    } else {
      line = `${Math.floor(r() * 1e7)},${pick(WORDS)},${pick(WORDS)} ${pick(WORDS)},${(r() * 999).toFixed(2)},${hex()},${new Date(t).toISOString().slice(0, 10)},${pick(['EUR', 'USD', 'GBP'])}\n`;
    }
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

export type Kind = 'text' | 'random';
export interface GenFile {
  /** Relative to the tree root. */
  rel: string;
  size: number;
  kind: Kind;
}
export interface Tree {
  root: string;
  files: GenFile[];
  bytes: number;
  cacheBytes: number;
}

const contentFor = (seed: string, f: GenFile) => (f.kind === 'text' ? textBytesFor(seed, f.size) : randomBytesFor(seed, f.size));

/** Lays out (without writing) the files of a host's tree of about `mib` MiB. */
export function planTree(seed: string, mib: number): { files: GenFile[]; cache: GenFile[] } {
  const r = rng(`tree:${seed}`);
  const total = Math.max(1, Math.round(mib * MiB));
  const files: GenFile[] = [];
  let large = Math.round(total * 0.65);
  for (let i = 0; large > 0; i++) {
    const size = Math.min(large, [4, 8, 16, 32][Math.floor(r() * 4)]! * MiB);
    const kind: Kind = r() < 0.5 ? 'text' : 'random';
    files.push({ rel: `large/${kind === 'text' ? `app-${String(i).padStart(3, '0')}.log` : `media-${String(i).padStart(3, '0')}.bin`}`, size, kind });
    large -= size;
  }
  let small = total - Math.round(total * 0.65);
  for (let i = 0; small > 0; i++) {
    const size = Math.min(small, Math.round(512 * Math.pow(256, r()))); // 0.5 KiB … 128 KiB, log-uniform
    const kind: Kind = r() < 0.55 ? 'text' : 'random';
    const ext = kind === 'text' ? ['json', 'log', 'csv'][i % 3] : ['jpg', 'pdf', 'gz'][i % 3];
    files.push({ rel: `small/d${String(Math.floor(i / 200)).padStart(4, '0')}/f${String(i).padStart(6, '0')}.${ext}`, size, kind });
    small -= size;
  }
  const cache: GenFile[] = [];
  let cacheLeft = Math.max(4096, Math.round(total * 0.1));
  for (let i = 0; cacheLeft > 0; i++) {
    const size = Math.min(cacheLeft, Math.round(64 * 1024 * Math.pow(16, r()))); // 64 KiB … 1 MiB
    cache.push({ rel: `cache/c${String(i).padStart(5, '0')}.tmp`, size, kind: i % 2 ? 'random' : 'text' });
    cacheLeft -= size;
  }
  files.sort((a, b) => (a.rel < b.rel ? -1 : 1));
  return { files, cache };
}

async function writeFiles(root: string, seed: string, files: GenFile[]): Promise<void> {
  const dirs = new Set(files.map((f) => join(root, f.rel, '..')));
  for (const d of dirs) await mkdir(d, { recursive: true });
  for (const f of files) await writeFile(join(root, f.rel), contentFor(`${seed}:${f.rel}`, f));
}

/** Six config-ish files, a few KB in all: a tiny host's whole tree, and a main tree's `etc/` (the small artifact). */
function configFiles(seed: string): GenFile[] {
  const r = rng(`tiny:${seed}`);
  return ['etc/app.env', 'etc/nginx.conf', 'etc/crontab', 'srv/VERSION', 'srv/compose.yml', 'srv/notes.txt'].map((rel) => ({ rel, size: 200 + Math.floor(r() * 1300), kind: 'text' as const }));
}

export async function writeTree(root: string, seed: string, mib: number): Promise<Tree> {
  const { files: bulk, cache } = planTree(seed, mib);
  const files = [...configFiles(seed).map((f) => ({ ...f, rel: `etc/${f.rel.replace('/', '-')}` })), ...bulk];
  await writeFiles(root, seed, files);
  await writeFiles(root, seed, cache);
  return { root, files, bytes: files.reduce((s, f) => s + f.size, 0), cacheBytes: cache.reduce((s, f) => s + f.size, 0) };
}

/** A tiny host: six config-ish files, a few KB in all. */
export async function writeTinyTree(root: string, seed: string): Promise<Tree> {
  const files = configFiles(seed);
  await writeFiles(root, seed, files);
  const cache = [{ rel: 'cache/tmp.bin', size: 2048, kind: 'random' as const }];
  await writeFiles(root, seed, cache);
  return { root, files, bytes: files.reduce((s, f) => s + f.size, 0), cacheBytes: 2048 };
}

/** Round `round`'s change: rewrites 1 % of the tree's files (every 100th, shifted per round) with new content. */
export async function changeTree(tree: Tree, seed: string, round: number): Promise<number> {
  let changed = 0;
  for (let i = 0; i < tree.files.length; i++) {
    if ((i + round * 37) % 100 !== 0) continue;
    const f = tree.files[i]!;
    await writeFile(join(tree.root, f.rel), contentFor(`${seed}:${f.rel}:round${round}`, f));
    changed++;
  }
  return changed;
}

// ---------------------------------------------------------------- PostgreSQL

export async function psql(sql: string, db = 'postgres'): Promise<string> {
  const r = await execa('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-c', sql]);
  return r.stdout.trim();
}

/** Bytes of plain pg_dump output per `items` row (measured on PostgreSQL 15: ~153). */
const DUMP_BYTES_PER_ROW = 153;

export function dbRows(mib: number): number {
  return Math.max(1000, Math.round((mib * MiB) / DUMP_BYTES_PER_ROW));
}

/** Creates `db` with `rows` deterministic rows. */
export async function createDatabase(db: string, rows: number): Promise<void> {
  await psql(`CREATE DATABASE ${db}`);
  await psql(
    `CREATE TABLE items (id bigint PRIMARY KEY, account int NOT NULL, sku text NOT NULL, note text NOT NULL, amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL);
     CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
     INSERT INTO accounts SELECT g, 'account ' || md5(g::text) FROM generate_series(0, 999) g;
     INSERT INTO items SELECT g, g % 1000, 'SKU-' || lpad(((g * 7919) % 1000000)::text, 7, '0'),
       md5(g::text) || ' ' || md5((g * 31)::text) || ' ' || md5((g * 17)::text),
       ((g * 104729) % 10000000) / 100.0, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
     FROM generate_series(1::bigint, ${rows}) g;
     ANALYZE;`,
    db,
  );
}

/** Round `round`'s change: 1000 rows updated (spread over the table, different rows each round). */
export async function changeDatabase(db: string, rows: number, round: number): Promise<void> {
  await psql(
    `UPDATE items SET note = md5(id::text || ':round${round}') || ' ' || md5((id * 3)::text), amount = amount + ${round}
     WHERE id IN (SELECT ((k * 7919 + ${round * 1009}) % ${rows}) + 1 FROM generate_series(0, 999) k)`,
    db,
  );
}

/** What a restore must bring back: row count and checksums of the rows. */
export async function databaseFingerprint(db: string): Promise<string> {
  return psql(`SELECT count(*) || ':' || sum(amount) || ':' || sum(hashtext(note)::bigint) || ':' || (SELECT count(*) FROM accounts) FROM items`, db);
}

// ---------------------------------------------------------------- checks

/** Count, bytes and (with `content`) a hash over every file's path and bytes, skipping `cache/` directories. */
export async function treeFingerprint(root: string, content = false): Promise<string> {
  const hash = createHash('sha256');
  let files = 0;
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'cache') await walk(p);
      } else if (e.isFile()) {
        const st = await lstat(p);
        files++;
        bytes += st.size;
        hash.update(`${relative(root, p)}\0${st.size}\0`);
        if (content) hash.update(await readFile(p));
      }
    }
  };
  await walk(root);
  return `${files} files, ${bytes} bytes, ${content ? 'content' : 'names+sizes'} sha256 ${hash.digest('hex').slice(0, 16)}`;
}
