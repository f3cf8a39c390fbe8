// hashFiles / sha256File: SHA-256 in worker threads or child processes (the worker's), checked against node:crypto and GNU sha256sum, with the names
// that need escaping in a manifest (newline, backslash, CR, spaces, a leading dash) and files that are not regular.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOrThrow, hashFiles, hashInProcesses, sha256File } from '../../src/snapshot/hash-files';
import { buildManifest, manifestLine, parseManifest, verifyManifest } from '../../src/snapshot/manifest';

/** Bytes this process's threads have read (not its children's). */
const bytesRead = () => readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))?.[1] ?? 0), 0);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const NAMES = ['plain', 'with space', ' leading and trailing ', 'new\nline', 'two\n\nnewlines\n', 'back\\slash', '\\n literal', 'cr\r', '-leading-dash', 'ü 日本 🚀'];

let root: string;
const content = new Map<string, Buffer>();

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-hash-'));
  NAMES.forEach((name, i) => {
    const bytes = randomBytes(1000 + i * 997);
    writeFileSync(join(root, name), bytes);
    content.set(name, bytes);
  });
  mkdirSync(join(root, 'dir'));
  writeFileSync(join(root, 'empty'), '');
  symlinkSync('plain', join(root, 'link'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('hashFiles', () => {
  it.each([['threads', false], ['processes', true]] as const)('hashes every file in input order, whatever its name, in several %s', async (_kind, inProcesses) => {
    hashInProcesses(inProcesses);
    // Declared 8 MiB each, so that they go to hashers, not in place.
    const files = NAMES.map((n) => ({ path: join(root, n), size: 8 * 2 ** 20 }));
    const digests = await hashFiles(files, { hashers: 3 }).finally(() => hashInProcesses(false));
    expect(digests).toEqual(NAMES.map((n) => ({ sha256: sha(content.get(n)!), size: content.get(n)!.length })));
  });

  it('agrees with GNU sha256sum on names it has to escape', async () => {
    const gnu = execFileSync('sha256sum', ['--', ...NAMES], { cwd: root, encoding: 'utf8' });
    const digests = await hashFiles(NAMES.map((n) => ({ path: join(root, n), size: 0 })));
    const ours = NAMES.map((n, i) => manifestLine(digestOrThrow(digests[i]!, n).sha256, n) + '\n').join('');
    expect(ours).toBe(gnu);
    expect(parseManifest(gnu).map((e) => e.path)).toEqual(NAMES);
  });

  it('reports a missing file, a symlink, a fifo and a directory as errors, without blocking or following', async () => {
    const digests = await hashFiles(['gone', 'link', 'fifo', 'dir', 'empty'].map((n) => ({ path: join(root, n), size: 0 })));
    expect(digests.map((d) => ('error' in d ? d.error.code : d.sha256))).toEqual(['ENOENT', 'ELOOP', 'ENOTREG', 'ENOTREG', sha('')]);
    expect(() => digestOrThrow(digests[0]!, 'gone')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('returns nothing for no files, and refuses an aborted signal', async () => {
    expect(await hashFiles([])).toEqual([]);
    await expect(hashFiles([{ path: join(root, 'plain'), size: 1 }], { signal: AbortSignal.abort() })).rejects.toThrow();
  });

  it('reports progress while a large file is read, and exact totals at the end', async () => {
    const big = randomBytes(80 * 2 ** 20 + 5); // several progress reports of 32 MiB
    const path = join(root, 'big');
    writeFileSync(path, big);
    const seen: Array<[number, number]> = [];
    const [digest] = await hashFiles([{ path, size: big.length }, { path: join(root, 'plain'), size: 1 }], { onProgress: (f, b) => seen.push([f, b]) });
    expect(digest).toEqual({ sha256: sha(big), size: big.length });
    expect(seen.some(([, bytes]) => bytes >= 32 * 2 ** 20 && bytes < big.length)).toBe(true); // before the file was done
    expect(seen.at(-1)).toEqual([2, big.length + content.get('plain')!.length]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![1]).toBeGreaterThanOrEqual(seen[i - 1]![1]);
    rmSync(path);
  });

  it('in processes (the worker), reads none of the bytes in this process', async () => {
    const path = join(root, 'apart-big');
    writeFileSync(path, randomBytes(48 * 2 ** 20));
    hashInProcesses();
    const before = bytesRead();
    const [digest] = await hashFiles([{ path, size: 48 * 2 ** 20 }]).finally(() => hashInProcesses(false));
    expect(bytesRead() - before).toBeLessThan(2 * 2 ** 20);
    expect(digest).toMatchObject({ size: 48 * 2 ** 20 });
    rmSync(path);
  });

  it('kills the processes when aborted mid-way', async () => {
    hashInProcesses();
    const path = join(root, 'abort-big');
    writeFileSync(path, randomBytes(64 * 2 ** 20));
    const ac = new AbortController();
    const files = Array.from({ length: 400 }, () => ({ path, size: 64 * 2 ** 20 })); // 25 GiB: many seconds of work
    const started = Date.now();
    const run = hashFiles(files, { signal: ac.signal, hashers: 2 }).finally(() => hashInProcesses(false));
    setTimeout(() => ac.abort(new Error('stop')), 50);
    await expect(run).rejects.toThrow('stop');
    expect(Date.now() - started).toBeLessThan(3_000);
    // Their source is their argv; pgrep exits 1 when nothing matches.
    expect(spawnSync('pgrep', ['-P', String(process.pid), '-f', 'const hashPaths'], { encoding: 'utf8' }).stdout.trim()).toBe('');
    rmSync(path);
  });
});

describe('sha256File', () => {
  it('returns sha256 and size, and throws with the errno code', async () => {
    expect(await sha256File(join(root, 'back\\slash'))).toEqual({ sha256: sha(content.get('back\\slash')!), size: content.get('back\\slash')!.length });
    await expect(sha256File(join(root, 'gone'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('manifest over the same names', () => {
  it('buildManifest hashes them all and verifyManifest finds them intact', async () => {
    const built = await buildManifest(root);
    for (const name of NAMES) expect(built.entries.find((e) => e.path === name)?.sha256).toBe(sha(content.get(name)!));
    expect(parseManifest(built.text)).toEqual(built.entries.map(({ path, sha256 }) => ({ path, sha256 })));
    expect(await verifyManifest(root, built.entries)).toEqual([]);
  });
});
