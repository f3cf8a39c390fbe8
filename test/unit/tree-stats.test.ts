// treeStats (src/sources/pull-tree.ts): the regular files under a snapshot tree and their bytes, which a restore
// drill compares the restored tree against. Symlinks are neither counted nor followed; each hard-linked name counts.
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { treeStats } from '../../src/sources/pull-tree';

const root = await mkdtemp(join(tmpdir(), 'lifeboat-treestats-'));
afterAll(() => rm(root, { recursive: true, force: true }));

describe('treeStats', () => {
  it('counts regular files and their bytes, at any depth, whatever their names', async () => {
    const t = join(root, 'tree');
    await mkdir(join(t, 'a/b/c'), { recursive: true });
    await writeFile(join(t, 'top.txt'), 'x'.repeat(10));
    await writeFile(join(t, 'a/b/c/deep.bin'), Buffer.alloc(4096));
    await writeFile(join(t, 'a/empty'), '');
    await writeFile(join(t, 'a/new\nline -name'), '12345'); // a newline and a leading-dash-like part in a name
    await link(join(t, 'top.txt'), join(t, 'a/hardlink.txt')); // two names, one inode: two files, as tar stores them
    await symlink('/etc/passwd', join(t, 'a/outside')); // not followed, not counted
    await symlink('b', join(t, 'a/dirlink'));
    expect(await treeStats(t)).toEqual({ file_count: 5, total_bytes: 10 + 4096 + 0 + 5 + 10 });
  });

  it('an empty tree is nothing; a relative path is refused (never an option to find)', async () => {
    await mkdir(join(root, 'empty'));
    expect(await treeStats(join(root, 'empty'))).toEqual({ file_count: 0, total_bytes: 0 });
    await expect(treeStats('-delete')).rejects.toThrow(/absolute path/);
  });
});
