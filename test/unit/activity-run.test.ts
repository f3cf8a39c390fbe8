// runActivity: the progress watchdog (Stalled), quiet phases, cancellation (final or to be retried), and errno →
// Lifeboat's vocabulary.
// Runs in Temporal's MockActivityEnvironment: real Context, no server.
import { ActivityCancellationDetails, ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runActivity, toFailure } from '../../src/activities/run';
import { LifeboatError } from '../../src/shared/errors';
import { isFinalFailure } from '../../src/storage/multipart';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('runActivity progress watchdog', () => {
  it('a step whose progress stops moving fails as retryable Stalled, with the last progress, and its child process is killed', async () => {
    const env = new MockActivityEnvironment();
    let child: ReturnType<typeof execa> | undefined;
    const started = Date.now();
    const f = await failureOf(
      env.run(() =>
        runActivity(
          async ({ signal, progress }) => {
            progress({ bytes: 10 });
            child = execa('sleep', ['30'], { cancelSignal: signal });
            await child;
          },
          { stallMs: 600, what: 'capture web/db' },
        ),
      ),
    );
    expect(f.type).toBe('Stalled');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('capture web/db: no progress for');
    expect(f.message).toContain('"bytes":10');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(child!.killed || child!.exitCode !== 0).toBe(true);
  });

  it('a step that keeps moving is never stalled, however long it runs', async () => {
    const env = new MockActivityEnvironment();
    const result = await env.run(() =>
      runActivity(
        async ({ progress }) => {
          for (let i = 0; i < 12; i++) {
            progress({ bytes: i });
            await sleep(150);
          }
          return 'done';
        },
        { stallMs: 500 },
      ),
    );
    expect(result).toBe('done');
  });

  it('a quiet phase may be silent up to its own bound, then normal stall rules apply again', async () => {
    const env = new MockActivityEnvironment();
    const ok = await env.run(() => runActivity(({ quiet }) => quiet('vacuum', 3_000, () => sleep(1_200).then(() => 'copied')), { stallMs: 400 }));
    expect(ok).toBe('copied');
    const started = Date.now();
    const f = await failureOf(env.run(() => runActivity(({ quiet, signal }) => quiet('vacuum', 800, () => execa('sleep', ['5'], { cancelSignal: signal })), { stallMs: 300 })));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(f.type).toBe('Stalled');
  });

  it('cancellation is reported as cancellation, not as the child error', async () => {
    const env = new MockActivityEnvironment();
    const p = env.run(() => runActivity(async ({ signal }) => void (await execa('sleep', ['30'], { cancelSignal: signal }))));
    setTimeout(() => env.cancel(), 200);
    await expect(p).rejects.toBeInstanceOf(CancelledFailure);
  });

  it('the step sees a retryable reason when Temporal will retry it (worker shutdown, timeout), a final one when cancelled', async () => {
    const reasonOn = async (cancel: (env: MockActivityEnvironment) => void) => {
      const env = new MockActivityEnvironment();
      let seen: unknown;
      const p = env.run(() =>
        runActivity(async ({ signal }) => {
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          seen = signal.reason;
          throw seen; // as a step's code does (a killed child, a failed request)
        }),
      );
      setTimeout(() => cancel(env), 50);
      await expect(p).rejects.toBeInstanceOf(CancelledFailure); // reported as Temporal's cancellation either way
      return seen;
    };
    // What an upload keeps for the next attempt depends on it (isFinalFailure in storage/multipart.ts).
    for (const details of [{ workerShutdown: true }, { timedOut: true }]) {
      const seen = await reasonOn((env) => env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails(details)));
      expect(seen).toBeInstanceOf(LifeboatError);
      expect((seen as LifeboatError).permanent).toBe(false);
      expect(isFinalFailure(seen, AbortSignal.abort(seen))).toBe(false);
    }
    const cancelled = await reasonOn((env) => env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true })));
    expect(cancelled).toBeInstanceOf(CancelledFailure);
    expect(isFinalFailure(cancelled, AbortSignal.abort(cancelled))).toBe(true);
  });
});

describe('toFailure', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something, write`), { code, path: '/backups/x' });

  it('ENOSPC and EDQUOT are a permanent InsufficientSpace; EACCES, EPERM and EROFS a permanent PermissionDenied', () => {
    for (const [code, type] of [
      ['ENOSPC', 'InsufficientSpace'],
      ['EDQUOT', 'InsufficientSpace'],
      ['EACCES', 'PermissionDenied'],
      ['EPERM', 'PermissionDenied'],
      ['EROFS', 'PermissionDenied'],
    ] as const) {
      const f = toFailure(errno(code)) as ApplicationFailure;
      expect(f, code).toBeInstanceOf(ApplicationFailure);
      expect(f.type).toBe(type);
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('/backups/x');
    }
  });

  it('other errno codes stay retryable as they were; Lifeboat errors keep their code', () => {
    const reset = errno('ECONNRESET');
    expect(toFailure(reset)).toBe(reset);
    const f = toFailure(new LifeboatError('CommandFailed', 'pg_dump exited 1')) as ApplicationFailure;
    expect([f.type, f.nonRetryable]).toEqual(['CommandFailed', false]);
    const g = toFailure(new LifeboatError('TargetInUse', 'in use')) as ApplicationFailure;
    expect([g.type, g.nonRetryable]).toEqual(['TargetInUse', true]);
  });

  it("a program's full-disk message (rsync, tar) becomes InsufficientSpace, keeping its text", () => {
    const rsync = new LifeboatError('CommandFailed', 'rsync from local failed (exit 11):\nrsync: [receiver] write failed on "/b/x": No space left on device (28)');
    const f = toFailure(rsync) as ApplicationFailure;
    expect([f.type, f.nonRetryable]).toEqual(['InsufficientSpace', true]);
    expect(f.message).toBe(rsync.message);
    const tar = toFailure(new LifeboatError('IntegrityCheckFailed', 'tar could not extract a.tar.zst: tar: x: Cannot write: No space left on device')) as ApplicationFailure;
    expect(tar.type).toBe('InsufficientSpace');
  });
});
