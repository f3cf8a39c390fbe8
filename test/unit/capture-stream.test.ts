// A full disk while a dump streams in is a typed, permanent failure of that capture: the partial file is removed,
// the command is stopped, and the process (the worker) keeps running. /dev/full stands in for the full disk.
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { toFailure } from '../../src/activities/run';
import { LocalHost } from '../../src/remote/local';
import { streamToFile } from '../../src/sources/capture-stream';

describe('streamToFile on a full disk', () => {
  it('fails with ENOSPC (→ permanent InsufficientSpace), removes the partial file, stops the command, no crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-full-'));
    const target = join(dir, 'dump.sql');
    symlinkSync('/dev/full', `${target}.partial`); // every write fails with ENOSPC
    const started = Date.now();
    const err = await streamToFile(new LocalHost('test'), ['sh', '-c', 'while :; do head -c 1048576 /dev/zero; done'], target, {}).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(err?.code).toBe('ENOSPC');
    expect(Date.now() - started).toBeLessThan(10_000); // the endless command was stopped
    expect(existsSync(`${target}.partial`)).toBe(false);
    expect(existsSync(target)).toBe(false);
    const failure = toFailure(err) as ApplicationFailure;
    expect([failure.type, failure.nonRetryable]).toEqual(['InsufficientSpace', true]);
  });

  it('a child process that says "No space left on device" is InsufficientSpace too', () => {
    const failure = toFailure(new Error('Command failed with exit code 2: tar -x\ntar: ./x: Cannot write: No space left on device')) as ApplicationFailure;
    expect([failure.type, failure.nonRetryable]).toEqual(['InsufficientSpace', true]);
  });
});
