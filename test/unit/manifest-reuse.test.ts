// Reusing manifest hashes: which files keep their hash (same device, inode, size and mtime) and which are read again,
// on real hard-linked snapshots made the way pull-tree.ts makes them (`cp -a -l` from a mirror), and a hash cache
// that is missing, corrupt or stale meaning "hash everything".
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildManifest, fileIdentity, hashManifest, listFiles, type ReusableHashes } from '../../src/snapshot/manifest';
import { hashCachePath, loadHashCache, parseHashCache, writeHashCache } from '../../src/snapshot/manifest-reuse';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const HOUR_AGO = new Date(Date.now() - 3600_000);
const PLAN = 'shop';
const FILES: Record<string, string> = {
  'site/index.html': '<h1>shop</h1>\n',
  'site/with space.txt': 'spaces',
  'site/new\nline.txt': 'a newline in the name',
  'site/back\\slash.txt': 'a backslash in the name',
  'site/cr\r': 'a carriage return in the name',
  'site/ünï 🚀.txt': 'unicode',
  'data/orders.csv': 'id,total\n1,10\n2,20\n',
};

let root: string;
let mirror: string;
let n = 0;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-reuse-'));
  mirror = join(root, '.mirror', PLAN, 'app', 'tree');
  for (const [rel, text] of Object.entries(FILES)) put(rel, text);
  n = 0;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A mirror file as rsync leaves it: content, then the source's (old) mtime. */
function put(rel: string, text: string, mtime = HOUR_AGO): void {
  const full = join(mirror, rel);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(full, text);
  utimesSync(full, mtime, mtime);
}

/** rsync's way of changing a file: a new file renamed over the old one (a new inode). */
function replace(rel: string, text: string, mtime = HOUR_AGO): void {
  const tmp = join(mirror, `.tmp-${n}`);
  writeFileSync(tmp, text);
  utimesSync(tmp, mtime, mtime);
  renameSync(tmp, join(mirror, rel));
}

/** A snapshot directory of hard links into the mirror, as pull-tree.ts makes it. */
function snapshot(): string {
  const name = `shop-2026010${++n}T000000`;
  execFileSync('cp', ['-a', '-l', mirror, join(root, name)]);
  return name;
}

async function finalize(name: string, reuse?: ReusableHashes) {
  return hashManifest(join(root, name), await listFiles(join(root, name)), reuse ? { reuse } : {});
}

/** The first snapshot, hashed in full, with its cache written. */
async function firstRun(): Promise<string> {
  const name = snapshot();
  await writeHashCache(root, PLAN, name, await finalize(name));
  return name;
}

async function cached(): Promise<ReusableHashes> {
  const { cache, reason } = await loadHashCache(root, PLAN);
  expect(cache, reason).toBeDefined();
  return cache!.entries;
}

describe('reuse decisions', () => {
  it('an unchanged file keeps its hash, though the new snapshot\'s hard links changed its ctime', async () => {
    const first = await firstRun();
    const ctimeBefore = lstatSync(join(mirror, 'data/orders.csv'), { bigint: true }).ctimeNs;
    await new Promise((r) => setTimeout(r, 20)); // past the file system's timestamp granularity
    const second = snapshot();
    expect(lstatSync(join(mirror, 'data/orders.csv'), { bigint: true }).ctimeNs).not.toBe(ctimeBefore); // why ctime is no identity

    const m = await finalize(second, await cached());
    expect({ hashed: m.hashed, reused: m.reused }).toEqual({ hashed: 0, reused: Object.keys(FILES).length });
    expect(m.text).toBe((await buildManifest(join(root, second))).text);
    expect(m.text).toBe((await buildManifest(join(root, first))).text);
  });

  it('a change of device, inode, size or mtime in the recorded identity means the file is read again', async () => {
    await firstRun();
    const name = snapshot();
    const reuse = await cached();
    const victim = 'site/index.html';
    const [dev, ino, size, mtime] = reuse.get(victim)!.identity.split(':').map(BigInt) as [bigint, bigint, bigint, bigint];
    const variants = [`${dev + 1n}:${ino}:${size}:${mtime}`, `${dev}:${ino + 1n}:${size}:${mtime}`, `${dev}:${ino}:${size + 1n}:${mtime}`, `${dev}:${ino}:${size}:${mtime + 1n}`];
    for (const identity of variants) {
      const wrong = new Map(reuse);
      wrong.set(victim, { identity, sha256: '0'.repeat(64) }); // a stale hash, which must not survive
      const m = await finalize(name, wrong);
      expect(m.hashed).toBe(1);
      expect(m.entries.find((e) => e.path === victim)?.sha256).toBe(sha(FILES[victim]!));
    }
  });

  it('identities are what fileIdentity says of the file (device, inode, size, mtime in ns)', async () => {
    const name = snapshot();
    const { files } = await listFiles(join(root, name));
    for (const f of files) expect(f.identity).toBe(fileIdentity(lstatSync(join(root, name, f.path), { bigint: true })));
  });

  it('files rsync replaced (same size and mtime, new inode), edited in place (same size), grown, added: read again; chmod: kept', async () => {
    await firstRun();
    replace('site/index.html', '<h1>SHOP</h1>\n'); // same size, same mtime: only the inode tells
    writeFileSync(join(mirror, 'data/orders.csv'), 'id,total\n1,10\n2,99\n'); // in place, same size: the mtime tells
    writeFileSync(join(mirror, 'site/new\nline.txt'), 'grown in place, and longer'); // in place, another size
    put('site/added.txt', 'new');
    chmodSync(join(mirror, 'site/with space.txt'), 0o600); // attributes only: ctime changes, content does not
    const name = snapshot();
    const m = await finalize(name, await cached());
    expect(m.hashed).toBe(4);
    expect(m.reused).toBe(Object.keys(FILES).length - 3);
    expect(m.text).toBe((await buildManifest(join(root, name))).text);
    expect(m.entries.find((e) => e.path === 'site/index.html')?.sha256).toBe(sha('<h1>SHOP</h1>\n'));
    const check = execFileSync('sha256sum', ['--strict', '-c', '-'], { cwd: join(root, name), input: m.text, encoding: 'utf8' });
    expect(check).not.toMatch(/FAILED/);
  });

  it('a file modified moments ago is hashed but not cached: a write in the same timestamp tick would keep its mtime', async () => {
    put('site/fresh.txt', 'just written', new Date());
    const first = snapshot();
    const m = await finalize(first);
    const fresh = m.entries.findIndex((e) => e.path === 'site/fresh.txt');
    expect(m.identities[fresh]).toBeUndefined();
    expect(m.identities.filter(Boolean)).toHaveLength(Object.keys(FILES).length);
    await writeHashCache(root, PLAN, first, m);
    expect((await cached()).has('site/fresh.txt')).toBe(false);
    const again = await finalize(snapshot(), await cached());
    expect(again.hashed).toBe(1);
  });
});

describe('hash cache', () => {
  it('round-trips every name, and is written atomically with mode 0600', async () => {
    const first = await firstRun();
    const file = hashCachePath(root, PLAN);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(file, '..')).filter((f) => f.includes('.tmp'))).toEqual([]);
    const { cache } = await loadHashCache(root, PLAN);
    expect(cache?.snapshot).toBe(first);
    expect([...cache!.entries.keys()].sort()).toEqual(Object.keys(FILES).sort());
    for (const [path, text] of Object.entries(FILES)) expect(cache!.entries.get(path)?.sha256).toBe(sha(text));
  });

  it('missing, corrupt, truncated, of another version or naming a snapshot that is gone: no cache, so every file is hashed', async () => {
    expect(await loadHashCache(root, PLAN)).toEqual({ reason: 'no hash cache yet' });
    const first = await firstRun();
    const file = hashCachePath(root, PLAN);
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)]! ^= 0x01;
    const cases: Array<[Buffer | string, RegExp]> = [
      [flipped, /checksum mismatch/],
      [good.subarray(0, good.length - 30), /truncated/],
      [good.toString().replace('v1', 'v2'), /not a hash cache/],
      ['', /not a hash cache/],
    ];
    for (const [bytes, reason] of cases) {
      writeFileSync(file, bytes);
      const loaded = await loadHashCache(root, PLAN);
      expect(loaded.cache).toBeUndefined();
      expect(loaded.reason).toMatch(reason);
      const m = await finalize(first, loaded.cache?.entries);
      expect(m.hashed).toBe(Object.keys(FILES).length);
    }
    writeFileSync(file, good);
    expect((await loadHashCache(root, PLAN)).cache).toBeDefined();
    rmSync(join(root, first), { recursive: true }); // pruned: its inodes may be reused by new files
    expect(await loadHashCache(root, PLAN)).toEqual({ reason: `hash cache ignored: its snapshot ${first} is no longer on the backup host` });
  });

  it('refuses a malformed line or a count that does not match, even under a valid checksum', () => {
    const body = (lines: string[], count = lines.length) => `lifeboat-hash-cache v1 shop-20260101T000000 ${count}\n${lines.map((l) => `${l}\n`).join('')}`;
    const seal = (text: string) => `${text}end ${sha(text)}\n`;
    const line = `1:2:3:4 ${sha('x')}  a`;
    expect(parseHashCache(seal(body([line])))).toMatchObject({ snapshot: 'shop-20260101T000000' });
    expect(parseHashCache(seal(body([line], 2)))).toBe('bad header');
    expect(parseHashCache(seal(body(['1:2:3 ' + line.split(' ').slice(1).join(' ')])))).toBe('malformed line');
    expect(parseHashCache(seal(body([`1:2:3:4 nothex  a`])))).toBe('malformed line');
    expect(parseHashCache(seal(body([line]).replace('shop-20260101T000000', '../etc')))).toBe('bad header');
  });
});
