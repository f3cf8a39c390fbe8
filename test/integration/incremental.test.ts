// Incremental finalize end to end (real Temporal, OpenSSH, rsync, local storage): a re-backup of an unchanged plan
// reads no file of the trees again (only the new metadata.yml), and a file changed at the source, or edited by hand
// in the backup host's mirror, is read again and lands in the manifest with its new hash.
import { createHash } from 'node:crypto';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import type { BackupResult } from '../../src/shared/types';
import { mirrorDir } from '../../src/snapshot/layout';
import { spacedBackups, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('incremental');
const taskQueue = uniqueName('incremental-it');
const HOUR_AGO = new Date(Date.now() - 3600_000);
let app: SshHost;
let t: TemporalFixture;
const tree = () => join(app.dataDir, 'site');

/** Names a manifest has to escape, a big file and small ones; the old mtime a real tree's files have. */
const FILES: Record<string, string | Buffer> = {
  'index.html': '<h1>shop</h1>\n',
  'with space.txt': 'spaces\n',
  'new\nline.txt': 'a newline in the name\n',
  'back\\slash.txt': 'a backslash in the name\n',
  'uploads/photo.bin': Buffer.alloc(3 * 2 ** 20, 7),
  ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`pages/page-${i}.html`, `<p>page ${i}</p>\n`])),
};
const TREE_FILES = Object.keys(FILES).length;

async function put(rel: string, content: string | Buffer, mtime = HOUR_AGO): Promise<void> {
  const full = join(tree(), rel);
  await mkdir(join(full, '..'), { recursive: true });
  await writeFile(full, content);
  await utimes(full, mtime, mtime);
}

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  app = await startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile });
  for (const [rel, content] of Object.entries(FILES)) await put(rel, content);
  const configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile, knownHosts: knownHostsFile },
    storages: { local: { type: 'local', path: join(root, 'storage') } },
    plans: { shop: { storages: ['local'], sources: [{ name: 'app', host: '127.0.0.1', port: app.port, artifacts: [{ type: 'files', name: 'site', paths: [tree()] }] }] } },
  });
  t = await temporalFixture(configPath, taskQueue);
});

afterAll(async () => {
  await t?.close();
  await app?.stop();
});

const backup = spacedBackups(() => t, taskQueue, 'shop');

/** The stored archive, extracted, checked line by line by GNU sha256sum; returns its manifest. */
async function checkStored(r: BackupResult): Promise<string> {
  const work = await tempDir('incremental-check');
  await execa('tar', ['--zstd', '-xf', r.location, '-C', work]);
  const dir = join(work, r.snapshot);
  const check = await execa('sha256sum', ['--strict', '-c', 'manifest.sha256'], { cwd: dir });
  expect(check.stdout.split('\n')).toHaveLength(r.manifest.files);
  return readFile(join(dir, 'manifest.sha256'), 'utf8');
}

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const lineOf = (manifest: string, name: string) => manifest.split('\n').find((l) => l.endsWith(`/site/${name}`));
const withoutMetadata = (manifest: string) => manifest.split('\n').filter((l) => !l.endsWith('  metadata.yml'));

describe('incremental finalize through the backup workflow', () => {
  let first: BackupResult;
  let firstManifest: string;

  it('the first backup hashes every file', async () => {
    first = await backup();
    expect(first.status).toBe('Completed');
    expect(first.manifest).toMatchObject({ files: TREE_FILES + 1, hashed_files: TREE_FILES + 1, reused_files: 0 });
    firstManifest = await checkStored(first);
  });

  it('a second backup of the unchanged plan reads no file of the tree again', async () => {
    const second = await backup();
    expect(second.snapshot).not.toBe(first.snapshot);
    // metadata.yml is written anew by every run (its capture time), so it is the one file hashed.
    expect(second.manifest).toMatchObject({ files: TREE_FILES + 1, hashed_files: 1, reused_files: TREE_FILES });
    expect(withoutMetadata(await checkStored(second))).toEqual(withoutMetadata(firstManifest));
  });

  it('a file changed at the source is read again and its new hash is in the stored manifest', async () => {
    const changed = '<h1>SHOP</h1>\n'; // same size as before
    await put('index.html', changed, new Date(HOUR_AGO.getTime() + 60_000));
    const r = await backup();
    expect(r.manifest).toMatchObject({ hashed_files: 2, reused_files: TREE_FILES - 1 });
    const manifest = await checkStored(r);
    expect(lineOf(manifest, 'index.html')).toMatch(new RegExp(`^${sha(changed)}  `));
    expect(lineOf(firstManifest, 'index.html')).toMatch(new RegExp(`^${sha(FILES['index.html']!)}  `));
  });

  it('a file edited in place in the mirror (same size) is read again: rsync puts the source\'s content back', async () => {
    const mirrored = join(mirrorDir(join(root, 'backups'), 'shop', 'app', 'site'), tree().slice(1), 'pages/page-3.html');
    await writeFile(mirrored, '<p>PAGE 3</p>\n');
    const r = await backup();
    expect(r.manifest).toMatchObject({ hashed_files: 2, reused_files: TREE_FILES - 1 });
    expect(lineOf(await checkStored(r), 'pages/page-3.html')).toMatch(new RegExp(`^${sha(FILES['pages/page-3.html']!)}  `));
  });
});
