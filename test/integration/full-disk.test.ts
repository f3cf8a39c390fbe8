// A backup root that fills up mid-run (a real 16 MiB tmpfs; the tests run as root to mount it): the failing step
// is InsufficientSpace (permanent, one attempt), no half-written file is left, and the worker keeps running.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('fulldisk');
const backupRoot = join(root, 'backups');
const taskQueue = uniqueName('fulldisk-it');
let t: TemporalFixture;

beforeAll(async () => {
  await mkdir(backupRoot, { recursive: true });
  const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', backupRoot], { reject: false });
  if (mounted.exitCode !== 0) throw new Error(`this test mounts a tmpfs and needs root: ${mounted.stderr}`);
  const data = join(root, 'data');
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'big.bin'), Buffer.alloc(10 * 1024 * 1024, 7));
  const tenMiB = ['head', '-c', String(10 * 1024 * 1024), '/dev/zero'];
  const configPath = await writeConfig(root, {
    backupRoot,
    temporal: { address: inject('temporalAddress'), taskQueue },
    storages: { disk: { type: 'local', path: join(root, 'store') } },
    plans: {
      // Command output is not estimated by preflight: 30 MiB of it meets a 16 MiB disk in the capture itself.
      dump: { storages: ['disk'], overheadRatio: 1, sources: [{ name: 'db', host: 'local', artifacts: [{ type: 'command', name: 'out', command: ['head', '-c', String(30 * 1024 * 1024), '/dev/zero'] }] }] },
      // 10 MiB of files fits preflight's estimate, but a 10 MiB command output lands first: rsync runs out of space.
      // parallelism 1: one artifact after the other (at 2 the two captures would race for the last free bytes).
      tree: {
        storages: ['disk'],
        overheadRatio: 1,
        parallelism: 1,
        sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'command', name: 'first', command: tenMiB }, { type: 'files', name: 'site', paths: [data] }] }],
      },
      small: { storages: ['disk'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'command', name: 'hello', command: ['echo', 'hello'] }] }] },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
}, 120_000);

afterAll(async () => {
  await t?.close();
  await execa('umount', [backupRoot], { reject: false });
  await rm(root, { recursive: true, force: true });
});

async function failedBackup(plan: string): Promise<ApplicationFailure> {
  const err = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName(`full-${plan}`), args: [{ plan, tier: 'manual' }] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

/** Every file under the backup root, relative: nothing half-written may remain (the mirror is not a snapshot). */
async function leftovers(): Promise<string[]> {
  const all = await readdir(backupRoot, { recursive: true });
  return all.filter((p) => !p.startsWith('.claims') && !p.startsWith('.mirror'));
}

describe('a full backup root', () => {
  it('a dump that fills the disk fails InsufficientSpace, leaves no partial file, and the worker goes on', async () => {
    const f = await failedBackup('dump');
    expect(f.type).toBe('InsufficientSpace');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/no space left on device|ENOSPC/i);
    expect(await leftovers()).toEqual([]);
    expect(t.worker.getState()).toBe('RUNNING');
  });

  it('rsync running out of space is InsufficientSpace too, not a retried CommandFailed', async () => {
    const f = await failedBackup('tree');
    expect(f.type).toBe('InsufficientSpace');
    expect(f.message).toContain('No space left on device');
    expect(await leftovers()).toEqual([]);
  });

  it('once space is there again, the same worker makes a good snapshot', async () => {
    await rm(join(backupRoot, '.mirror'), { recursive: true, force: true });
    const r = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('full-small'), args: [{ plan: 'small', tier: 'manual' }] });
    expect(r).toMatchObject({ success: true, status: 'Completed' });
  });
});
