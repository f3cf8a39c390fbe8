import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileIdentity } from '../../src/snapshot/manifest';
import { DIRECTORY, FILE, walkTree } from '../../src/snapshot/walk-tree';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-walk-'));
  mkdirSync(join(root, 'd'));
  writeFileSync(join(root, 'd/old'), 'old');
  writeFileSync(join(root, 'd/new'), 'new!');
  utimesSync(join(root, 'd/old'), new Date('2020-01-02T03:04:05.123Z'), new Date('2020-01-02T03:04:05.123Z'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('walkTree (GNU find)', () => {
  it('gives each file the identity lstat gives it, to the nanosecond', async () => {
    const tree = await walkTree(root, { racyFromNs: 0n });
    expect(tree.paths).toEqual(['d', 'd/new', 'd/old']);
    expect(tree.kinds).toEqual([DIRECTORY, FILE, FILE]);
    expect(tree.sizes).toEqual([0, 4, 3]);
    for (const [i, path] of tree.paths.entries()) {
      if (tree.kinds[i] === FILE) expect(tree.identities[i]).toBe(fileIdentity(lstatSync(join(root, path), { bigint: true })));
    }
  });

  it('gets a modification time before 1970 right (find prints the seconds rounded down, then the nanoseconds)', async () => {
    const when = new Date('1969-12-31T23:59:58.500Z');
    utimesSync(join(root, 'd/old'), when, when);
    const tree = await walkTree(root, { racyFromNs: 0n });
    expect(tree.identities[2]).toBe(fileIdentity(lstatSync(join(root, 'd/old'), { bigint: true })));
    expect(tree.identities[2]).toMatch(/:-1500000000$/);
  });

  it('marks files modified at or after racyFromNs as racy', async () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const tree = await walkTree(root, { racyFromNs: now - 60_000_000_000n });
    expect(tree.racy).toEqual([false, true, false]);
  });

  it('fails with the errno code of a missing root, and on an aborted signal', async () => {
    await expect(walkTree(join(root, 'gone'), { racyFromNs: 0n })).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(walkTree(root, { racyFromNs: 0n, signal: AbortSignal.abort() })).rejects.toThrow();
  });
});
