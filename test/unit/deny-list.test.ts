import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_DENY, rsyncExcludeArgs, isDenied } from '../../src/snapshot/deny-list';

const KEY = '.config/sops/age/keys.txt';

describe('BUILTIN_DENY', () => {
  it('contains the SOPS age key', () => {
    expect(BUILTIN_DENY).toEqual([KEY]);
  });
});

describe('rsyncExcludeArgs', () => {
  it('anchors path patterns at the top and at any depth', () => {
    expect(rsyncExcludeArgs(BUILTIN_DENY)).toEqual([`--exclude=/${KEY}`, `--exclude=**/${KEY}`]);
  });

  it('passes slash-free, anchored and ** patterns as given', () => {
    expect(rsyncExcludeArgs(['*.cache*', 'cache/', '/top-only', '**/x/y', ''])).toEqual([
      '--exclude=*.cache*',
      '--exclude=cache/',
      '--exclude=/top-only',
      '--exclude=**/x/y',
    ]);
  });

  it("keeps rsync's old-style prefixes from turning a pattern into an include or a list reset", () => {
    expect(rsyncExcludeArgs(['!', '+ keys.txt', '- x', '!literal'])).toEqual([
      '--exclude=- !',
      '--exclude=- + keys.txt',
      '--exclude=- - x',
      '--exclude=!literal',
    ]);
  });
});

describe('isDenied', () => {
  it('matches the key at the top and at any depth, on segment boundaries only', () => {
    expect(isDenied(KEY, BUILTIN_DENY)).toBe(true);
    expect(isDenied(`home/deploy/${KEY}`, BUILTIN_DENY)).toBe(true);
    expect(isDenied(`x${KEY}`, BUILTIN_DENY)).toBe(false);
    expect(isDenied(`home/x${KEY}`, BUILTIN_DENY)).toBe(false);
    expect(isDenied(`${KEY}.bak`, BUILTIN_DENY)).toBe(false);
    expect(isDenied('.config/sops/age/other.txt', BUILTIN_DENY)).toBe(false);
  });

  it('denies everything inside a denied path', () => {
    expect(isDenied(`${KEY}/inside`, BUILTIN_DENY)).toBe(true);
    expect(isDenied('a/.cache/b/c', ['*.cache*'])).toBe(true);
  });

  it('supports wildcards, anchoring and directory-only patterns', () => {
    expect(isDenied('x/y.cache.db', ['*.cache*'])).toBe(true);
    expect(isDenied('x/y.cache.db', ['/*.cache*'])).toBe(false);
    expect(isDenied('y.cache.db', ['/*.cache*'])).toBe(true);
    expect(isDenied('a/b/c.log', ['a/*.log'])).toBe(false); // * stops at /
    expect(isDenied('a/b/c.log', ['a/**.log'])).toBe(true);
    expect(isDenied('f1', ['f?'])).toBe(true);
    expect(isDenied('f1', ['f[0-9]'])).toBe(true);
    expect(isDenied('fx', ['f[!0-9]'])).toBe(true);
    expect(isDenied('f1', ['f[!0-9]'])).toBe(false);
    expect(isDenied('var/cache', ['cache/'])).toBe(false); // could be a file
    expect(isDenied('var/cache/', ['cache/'])).toBe(true); // caller says: directory
    expect(isDenied('var/cache/x', ['cache/'])).toBe(true);
    expect(isDenied('a\\b', ['a\\b'])).toBe(true); // no wildcards: backslash is literal
  });
});

describe('real rsync', () => {
  let dir: string;
  const FILES = [
    KEY,
    '.config/sops/age/other.txt',
    '.config/app.yml',
    `home/deploy/${KEY}`,
    'home/deploy/.config/sops/age/README',
    `x${KEY}`,
    'data/app.cache.db',
    'data/cache/blob',
    'data/cache-not-a-dir/cache',
    'data/keep.txt',
    'keys.txt',
  ];
  const USER = ['*.cache*', 'cache/', '!', '+ keep.txt'];
  const PATTERNS = [...BUILTIN_DENY, ...USER];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-deny-'));
    for (const rel of FILES) {
      mkdirSync(join(dir, 'src', rel, '..'), { recursive: true });
      writeFileSync(join(dir, 'src', rel), rel);
    }
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const rsync = (from: string) =>
    execFileSync('rsync', ['-a', ...rsyncExcludeArgs(PATTERNS), from, `${join(dir, 'dst')}/`]);

  it('never copies the key, at the top or nested, but copies its siblings', () => {
    rsync(`${join(dir, 'src')}/`);
    const dst = (rel: string) => existsSync(join(dir, 'dst', rel));
    expect(dst(KEY)).toBe(false);
    expect(dst(`home/deploy/${KEY}`)).toBe(false);
    expect(dst('.config/sops/age/other.txt')).toBe(true);
    expect(dst('home/deploy/.config/sops/age/README')).toBe(true);
    expect(dst(`x${KEY}`)).toBe(true);
    expect(dst('keys.txt')).toBe(true);
    expect(dst('data/keep.txt')).toBe(true);
  });

  it('agrees with isDenied on every file', () => {
    rsync(`${join(dir, 'src')}/`);
    const copied = new Set(listFiles(join(dir, 'dst')));
    for (const rel of FILES) expect([rel, !copied.has(rel)]).toEqual([rel, isDenied(rel, PATTERNS)]);
  });

  it('still excludes the key when the transfer root is above the backed-up dir', () => {
    rsync(join(dir, 'src')); // no trailing slash: paths arrive as src/…
    expect(existsSync(join(dir, 'dst/src', KEY))).toBe(false);
    expect(existsSync(join(dir, 'dst/src/home/deploy', KEY))).toBe(false);
    expect(existsSync(join(dir, 'dst/src/.config/sops/age/other.txt'))).toBe(true);
  });
});

function listFiles(root: string, rel = ''): string[] {
  return readdirSync(join(root, rel), { withFileTypes: true }).flatMap((d) => {
    const p = rel ? `${rel}/${d.name}` : d.name;
    return d.isDirectory() ? listFiles(root, p) : [p];
  });
}
