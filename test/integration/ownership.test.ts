// Restores keep what the source had: numeric owners and groups, modes (setuid, setgid, sticky), hard links,
// symlinks, mtimes, POSIX ACLs and xattrs, along the whole path: rsync pull over SSH into the mirror, the
// snapshot hard-linked from it, tar, storage, the safe extraction, rsync push over SSH. Real Temporal worker,
// OpenSSH hosts and rsync; the worker and the SSH user are root here, as on a production backup host.
import { mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { FilesArtifact } from '../../src/config/schema';
import { LocalHost } from '../../src/remote/local';
import type { BackupResult, RestoreInput, RestoreResult } from '../../src/shared/types';
import { extractArchive } from '../../src/snapshot/extract';
import { filesRestore } from '../../src/sources/restore/files';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('ownership');
const taskQueue = uniqueName('ownership-it');
let app: SshHost;
let spare: SshHost;
let t: TemporalFixture;
let before = '';
let backup: BackupResult;

const tree = () => join(app.dataDir, 'tree');
// A file capability (cap_net_bind_service+ep), as `setcap` writes it.
const CAP_NET_BIND = '0sAQAAAgAEAAAAAAAAAAAAAAAAAAA=';

const sh = (script: string, ...args: string[]) => execa('sh', ['-ec', script, 'sh', ...args]);

/** The tree as the attribute tools see it: one text, comparable between the original and a restored copy. */
async function describeTree(dir: string): Promise<string> {
  const { stdout } = await sh(
    `cd "$1"
     # name, type, uid, gid, mode (with setuid/setgid/sticky), link count, mtime to the nanosecond, symlink target
     find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %F %u %g %a %h %y %N'
     # getfacl follows symlinks and symlinks carry no xattrs here: regular files and directories only
     find . ! -type l -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m '^(user\\.|security\\.capability)'
     find . ! -type l -print0 | LC_ALL=C sort -z | xargs -0 getfacl -n`,
    dir,
  );
  return stdout;
}

/** Files of several owners (4242 has no name here), every special mode bit, a hard-linked pair, ACLs, xattrs. */
async function buildTree(dir: string): Promise<void> {
  for (const d of ['www', 'home', 'bin', 'shared', 'groupdir']) await mkdir(join(dir, d), { recursive: true });
  await writeFile(join(dir, 'www/index.html'), '<h1>shop</h1>\n');
  await symlink('index.html', join(dir, 'www/link'));
  await writeFile(join(dir, 'home/notes.txt'), 'private\n');
  await writeFile(join(dir, 'bin/tool'), '#!/bin/sh\necho tool\n');
  await writeFile(join(dir, 'acl.txt'), 'shared with 1000\n');
  await writeFile(join(dir, 'pair-a'), 'same inode\n');
  await writeFile(join(dir, 'nobody.txt'), 'owner without a name\n');
  await sh(
    `cd "$1"
     chown -R 33:33 www && chown -h 33:33 www/link && chmod 750 www && chmod 640 www/index.html
     chown -R 1000:1000 home && chmod 700 home && chmod 600 home/notes.txt
     chmod 4755 bin/tool && setfattr -n security.capability -v "$2" bin/tool
     chmod 1777 shared && setfacl -d -m u:1000:rwx shared
     chown 0:33 groupdir && chmod 2775 groupdir
     ln pair-a pair-b && chown 33:33 pair-a
     chown 4242:4242 nobody.txt
     setfacl -m u:1000:rw acl.txt
     setfattr -n user.origin -v lifeboat www/index.html && setfattr -n user.empty home/notes.txt
     # mtimes last (chown, chmod and xattrs change ctime only), children before their directory
     find . -depth -exec touch -h -d '2024-02-03 04:05:06.123456789' {} +`,
    dir,
    CAP_NET_BIND,
  );
}

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  [app, spare] = await Promise.all([
    startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile }),
    startSshHost({ name: 'spare', baseDir: root, identityFile, knownHostsFile }),
  ]);
  await buildTree(tree());
  before = await describeTree(tree());
  const configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile, knownHosts: knownHostsFile },
    storages: { local: { type: 'local', path: join(root, 'storage') } },
    plans: {
      site: {
        storages: ['local'],
        sources: [
          { name: 'app', host: '127.0.0.1', port: app.port, artifacts: [{ type: 'files', name: 'tree', paths: [tree()] }] },
          // Only a --to-host target; the plan needs it as a source with something to back up.
          { name: 'spare', host: '127.0.0.1', port: spare.port, artifacts: [{ type: 'command', name: 'kernel', command: ['uname', '-s'] }] },
        ],
      },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
  backup = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('own-backup'), args: [{ plan: 'site', tier: 'manual' }] });
  expect(backup.success).toBe(true);
}, 170_000);

afterAll(async () => {
  await t?.close();
  await Promise.allSettled([app?.stop(), spare?.stop()]);
  await rm(root, { recursive: true, force: true });
});

const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('own-restore'), args: [{ plan: 'site', snapshot: 'latest', force: false, dryRun: false, artifact: 'tree', ...over }] });

describe('a files artifact keeps owners, modes, hard links, ACLs and xattrs', () => {
  it('the original tree has what the test claims (so equality below means something); the backup lost nothing', async () => {
    const metadata = parse(await readFile(join(backup.snapshot_dir, 'metadata.yml'), 'utf8'));
    expect(metadata.components.tree.details.warnings).toBeUndefined();
    expect(before).toMatch(/^\.\/bin\/tool regular file 0 0 4755 1 2024-02-03 04:05:06\.123456789/m);
    expect(before).toMatch(/^\.\/shared directory 0 0 1777 /m);
    expect(before).toMatch(/^\.\/groupdir directory 0 33 2775 /m);
    expect(before).toMatch(/^\.\/pair-a regular file 33 33 644 2 /m);
    expect(before).toMatch(/^\.\/pair-b regular file 33 33 644 2 /m);
    expect(before).toMatch(/^\.\/nobody\.txt regular file 4242 4242 644 1 /m);
    expect(before).toMatch(/^\.\/www\/link symbolic link 33 33 777 1 .* -> 'index\.html'$/m);
    expect(before).toContain(`security.capability=${CAP_NET_BIND}`);
    expect(before).toContain('user.origin="lifeboat"');
    expect(before).toMatch(/# file: acl\.txt\n(#.*\n)*user::rw-\nuser:1000:rw-\n/);
    expect(before).toContain('default:user:1000:rwx');
  });

  it('--to-dir on another host: the copy below the directory is identical', async () => {
    const dir = join(spare.dataDir, 'restored');
    await restore({ toHost: 'spare', dir });
    expect(await describeTree(join(dir, tree()))).toBe(before);
  });

  it('in place, after the originals were deleted: identical', async () => {
    await rm(tree(), { recursive: true, force: true });
    await restore({});
    expect(await describeTree(tree())).toBe(before);
  });

  it('in place with --force over changed originals: owners, modes, links, ACLs and xattrs are put back', async () => {
    await sh(
      `cd "$1"
       chown -R 0:0 . && chmod 755 bin/tool shared groupdir
       setfattr -x user.origin www/index.html && setfacl -b acl.txt && setfacl -k shared
       rm pair-b && cp pair-a pair-b && echo extra > extra.txt`,
      tree(),
    );
    expect(await describeTree(tree())).not.toBe(before);
    await restore({ force: true });
    expect(await describeTree(tree())).toBe(before);
  });
});

describe('the extraction of an untrusted archive', () => {
  it('sets only the kept xattrs, whatever else the archive carries, inside a private directory', async () => {
    const dir = join(root, 'hostile');
    await mkdir(join(dir, 'snap'), { recursive: true });
    await writeFile(join(dir, 'snap/f'), 'x');
    await sh(
      `cd "$1"
       setfattr -n user.ok -v 1 snap/f && setfattr -n trusted.evil -v 1 snap/f && setfattr -n security.selinux -v system_u:object_r:shadow_t:s0 snap/f
       tar --format=posix --xattrs --xattrs-include='*' -cf - snap | zstd -q -c > snap.tar.zst`,
      dir,
    );
    const target = join(dir, 'extract');
    await mkdir(target, { mode: 0o755 }); // an existing, empty, readable target is made private
    const { root: extracted, warnings } = await extractArchive(join(dir, 'snap.tar.zst'), 'tar.zst', target);
    expect(warnings).toEqual([]);
    expect((await stat(target)).mode & 0o777).toBe(0o700);
    const { stdout } = await execa('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', join(extracted, 'f')]);
    expect(stdout).toContain('user.ok="1"');
    expect(stdout).not.toMatch(/trusted\.evil|security\.selinux/);
  });
});

describe('a target filesystem without xattrs or ACLs (ramfs)', () => {
  const mount = join(root, 'ramfs');

  afterAll(async () => {
    await execa('umount', [mount], { reject: false });
  });

  it('the restore completes, owners and modes kept, and says which attributes were not kept', async () => {
    await mkdir(mount, { recursive: true });
    await execa('mount', ['-t', 'ramfs', '-o', 'mode=755', 'ramfs', mount]);
    const metadata = parse(await readFile(join(backup.snapshot_dir, 'metadata.yml'), 'utf8'));
    const artifact = FilesArtifact.parse({ type: 'files', name: 'tree', paths: [tree()] });
    const signal = new AbortController().signal;
    const res = await filesRestore.restore({
      host: new LocalHost('spare'), artifact, snapshotDir: backup.snapshot_dir, component: metadata.components.tree,
      options: { dir: mount, force: false }, signal, progress: () => {},
    });
    const warnings = res.details.warnings as string[];
    expect(warnings[0]).toMatch(/attribute\(s\) not kept \((ACLs, xattrs|xattrs, ACLs)\)/);
    const copy = await describeTree(join(mount, tree()));
    expect(copy).toMatch(/^\.\/bin\/tool regular file 0 0 4755 1 /m);
    expect(copy).toMatch(/^\.\/pair-a regular file 33 33 644 2 /m);
    expect(copy).toMatch(/^\.\/nobody\.txt regular file 4242 4242 644 1 /m);
    expect(copy).not.toContain('user.origin');
    expect(await readFile(join(mount, tree(), 'www/index.html'), 'utf8')).toBe('<h1>shop</h1>\n');
  });
});
