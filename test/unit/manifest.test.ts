import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  manifestLine,
  parseManifest,
  hashFile,
  buildManifest,
  verifyManifest,
} from '../../src/snapshot/manifest';

const HEX = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'; // sha256('')
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const FILES: Record<string, string> = {
  'plain.txt': 'hello\n',
  'with space.txt': 'spaces',
  'new\nline.txt': 'newline in name',
  'back\\slash.txt': 'backslash in name',
  'cr-at-end\r': 'carriage return at the end of the name',
  'ünïcødé/日本語 🚀.txt': 'unicode',
  'a/b/c/deep.txt': 'nested',
  'a/b-sibling': 'sorts before a/b/… in byte order',
  "quote's \"both\"": 'quotes',
  '-leading-dash': 'dash',
  empty: '',
};

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-manifest-'));
  for (const [rel, content] of Object.entries(FILES)) {
    const full = join(root, rel);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, content);
  }
  symlinkSync('with space.txt', join(root, 'link-to-file'));
  symlinkSync('a', join(root, 'link-to-dir'));
  symlinkSync('/nonexistent', join(root, 'dangling'));
  execFileSync('mkfifo', [join(root, 'a/fifo')]);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('manifestLine', () => {
  it('uses two spaces and no escaping for ordinary names', () => {
    expect(manifestLine(HEX, 'dir/file name.txt')).toBe(`${HEX}  dir/file name.txt`);
  });

  it('escapes backslash, newline and CR and flags the line with a backslash', () => {
    expect(manifestLine(HEX, 'a\\b\nc')).toBe(`\\${HEX}  a\\\\b\\nc`);
    expect(manifestLine(HEX, 'x\r')).toBe(`\\${HEX}  x\\r`);
  });
});

describe('parseManifest', () => {
  it('inverts manifestLine', () => {
    const names = ['plain', 'a b', 'a\\b', 'a\nb', '\\\\n', 'x\r', 'ü/日本', ' lead', 'trail '];
    const text = names.map((n, i) => manifestLine(sha(String(i)), n) + '\n').join('');
    expect(parseManifest(text)).toEqual(names.map((path, i) => ({ path, sha256: sha(String(i)) })));
  });

  it('accepts the binary-mode flag, uppercase hex and a missing final newline', () => {
    expect(parseManifest(`${HEX.toUpperCase()} *bin`)).toEqual([{ path: 'bin', sha256: HEX }]);
  });

  it('returns nothing for empty text', () => {
    expect(parseManifest('')).toEqual([]);
  });

  it('names the line number of a malformed line', () => {
    const good = manifestLine(HEX, 'ok');
    expect(() => parseManifest(`${good}\n${good}\nnot a checksum\n`)).toThrow(/line 3/);
    expect(() => parseManifest(`${good}\n\n${good}\n`)).toThrow(/line 2/);
    expect(() => parseManifest(`${HEX} one-space`)).toThrow(/line 1/);
    expect(() => parseManifest(`${HEX.slice(1)}  short-hash`)).toThrow(/line 1/);
    expect(() => parseManifest(`\\${HEX}  bad\\escape`)).toThrow(/line 1/);
    expect(() => parseManifest(`\\${HEX}  trailing\\`)).toThrow(/line 1/);
  });
});

describe('hashFile', () => {
  it('returns sha256 and size', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'x'); // spans several chunks
    writeFileSync(join(root, 'big'), big);
    expect(await hashFile(join(root, 'big'))).toEqual({
      sha256: createHash('sha256').update(big).digest('hex'),
      size: big.length,
    });
    expect(await hashFile(join(root, 'empty'))).toEqual({ sha256: HEX, size: 0 });
  });

  it('honours an aborted signal', async () => {
    await expect(hashFile(join(root, 'plain.txt'), AbortSignal.abort())).rejects.toThrow();
  });
});

describe('buildManifest', () => {
  const skipSelf = (p: string) => p === 'manifest.sha256';

  it('produces a manifest that real sha256sum -c accepts', async () => {
    const progress: Array<[number, number]> = [];
    const built = await buildManifest(root, { skip: skipSelf, onProgress: (f, b) => progress.push([f, b]) });
    writeFileSync(join(root, 'manifest.sha256'), built.text);

    const res = spawnSync('sha256sum', ['--strict', '-c', 'manifest.sha256'], { cwd: root, encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);

    expect(built.entries.map((e) => e.path).sort()).toEqual(Object.keys(FILES).sort());
    expect(built.symlinks).toBe(3);
    expect(progress).toHaveLength(built.entries.length);
    const totalBytes = Object.values(FILES).reduce((n, c) => n + Buffer.byteLength(c), 0);
    expect(progress.at(-1)).toEqual([built.entries.length, totalBytes]);
  });

  it('is byte-identical to GNU sha256sum over the same files in C-locale order', async () => {
    const built = await buildManifest(root);
    const gnu = execFileSync(
      'sh',
      ['-c', "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum --"],
      { cwd: root, encoding: 'utf8' },
    );
    expect(built.text).toBe(gnu);
  });

  it('round-trips through parseManifest', async () => {
    const built = await buildManifest(root);
    expect(built.text.endsWith('\n')).toBe(true);
    expect(parseManifest(built.text)).toEqual(built.entries.map(({ path, sha256 }) => ({ path, sha256 })));
    const deep = built.entries.find((e) => e.path === 'a/b/c/deep.txt');
    expect(deep).toEqual({ path: 'a/b/c/deep.txt', sha256: sha('nested'), size: 6 });
  });

  it('prunes skipped directories', async () => {
    const built = await buildManifest(root, { skip: (p) => p === 'a' });
    expect(built.entries.some((e) => e.path.startsWith('a/'))).toBe(false);
  });

  it('honours an aborted signal', async () => {
    await expect(buildManifest(root, { signal: AbortSignal.abort() })).rejects.toThrow();
  });
});

describe('verifyManifest', () => {
  it('is clean on an untouched tree', async () => {
    const { entries } = await buildManifest(root);
    expect(await verifyManifest(root, entries)).toEqual([]);
  });

  it('reports a flipped byte as checksum and a deleted file as missing', async () => {
    const { entries } = await buildManifest(root);
    const victim = join(root, 'new\nline.txt');
    const bytes = readFileSync(victim);
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    writeFileSync(victim, bytes);
    unlinkSync(join(root, 'a/b/c/deep.txt'));

    expect(await verifyManifest(root, entries)).toEqual([
      { path: 'a/b/c/deep.txt', problem: 'missing' },
      { path: 'new\nline.txt', problem: 'checksum' },
    ]);
  });

  it('treats a symlink where a file was as missing', async () => {
    const { entries } = await buildManifest(root);
    unlinkSync(join(root, 'plain.txt'));
    symlinkSync('with space.txt', join(root, 'plain.txt'));
    expect(await verifyManifest(root, entries)).toEqual([{ path: 'plain.txt', problem: 'missing' }]);
  });

  it('refuses paths that escape the root', async () => {
    await expect(verifyManifest(root, [{ path: '../etc/passwd', sha256: HEX }])).rejects.toThrow(/escapes/);
    await expect(verifyManifest(root, [{ path: '/etc/passwd', sha256: HEX }])).rejects.toThrow(/escapes/);
  });
});
