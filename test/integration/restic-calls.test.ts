// What one backup costs in restic calls, each of which derives the repository key (scrypt, about 0.5 s of CPU):
// preflight's `cat config`, then in the upload only `snapshots`, the data `backup` and the record `backup`. Real
// restic behind a PATH wrapper that logs each subcommand; a local-path repository.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotRecord } from '../../src/shared/types';
import { buildManifest } from '../../src/snapshot/manifest';
import { openStorage } from '../../src/storage';
import { isRestic } from '../../src/storage/restic';
import { findRestic } from '../../src/storage/restic-run';
import { uploadToRestic } from '../../src/storage/restic-upload';
import { tempDir } from '../support/fixtures';

const root = await tempDir('restic-calls');
const log = join(root, 'calls.log');
const savedPath = process.env.PATH;

beforeAll(async () => {
  const real = findRestic();
  await mkdir(join(root, 'bin'));
  // Logs the subcommand (the first argument not starting with "-"), then runs the real restic.
  await writeFile(join(root, 'bin', 'restic'), `#!/bin/sh\nfor a in "$@"; do case "$a" in -*) ;; *) echo "$a" >> '${log}'; break ;; esac; done\nexec '${real}' "$@"\n`);
  await chmod(join(root, 'bin', 'restic'), 0o755);
  process.env.PATH = `${join(root, 'bin')}:${savedPath}`;
  await writeFile(join(root, 'password'), `${randomBytes(8).toString('hex')}\n`, { mode: 0o600 });
});

afterAll(async () => {
  process.env.PATH = savedPath;
  await rm(root, { recursive: true, force: true });
});

const calls = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l && l !== 'version');

describe('restic calls per backup', () => {
  it('preflight opens the repository once; the upload then lists, backs up the data and writes the record', async () => {
    const cfg = { type: 'restic' as const, repository: join(root, 'repo'), password: { file: join(root, 'password') }, env: {}, init: true, checkReadDataPercent: 5 };
    await (await openStorage('repo', cfg)).check(); // creates it: cat config, init, cat config
    await rm(log, { force: true });
    await (await openStorage('repo', cfg)).check(); // preflight of a run
    expect(await calls()).toEqual(['cat']);

    const dir = join(root, 'snap');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'data.bin'), randomBytes(50_000));
    await writeFile(join(dir, 'metadata.yml'), 'plan: p\n');
    const m = await buildManifest(dir);
    await writeFile(join(dir, 'manifest.sha256'), m.text);
    const record: SnapshotRecord = {
      success: true, status: 'Completed', snapshot: 'p-20261202T000000', plan: 'p', tier: 'daily', created_at: '2026-12-02T00:00:00Z', format: 'tar.zst',
      size_bytes: 0, checksum_sha256: createHash('sha256').update(m.text).digest('hex'),
      manifest: { sha256: createHash('sha256').update(m.text).digest('hex'), files: m.entries.length, bytes: m.entries.reduce((n, e) => n + e.size, 0) },
      artifacts: [],
    };
    await rm(log, { force: true });
    const backend = await openStorage('repo', cfg); // the upload activity opens its own
    if (!isRestic(backend)) throw new Error('not restic');
    const out = await uploadToRestic(backend, { storage: 'repo', dir, record });
    expect(await calls()).toEqual(['snapshots', 'backup', 'backup']);
    expect(out.restic.repository_id).toMatch(/^[0-9a-f]{64}$/); // from preflight's answer, not a second `cat config`
    const stored = await backend.getJson<SnapshotRecord & { restic: { snapshot_id: string } }>('p/p-20261202T000000.json');
    expect(stored?.restic.snapshot_id).toBe(out.restic.snapshot_id);
  });
});
