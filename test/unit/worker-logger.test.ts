// The worker's logger: an expected typed failure is one line (step, run, type: message), a bug keeps its stack,
// and --log-format json is one parseable object per line.
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { LifeboatLogger, type LogFormat } from '../../src/workers/logger';

function capture(format: LogFormat) {
  const lines: string[] = [];
  return { lines, logger: new LifeboatLogger(format, 'INFO', (l) => lines.push(l)) };
}

// The attributes the SDK puts on an activity's log entries (activity.js activityLogAttributes).
const activityMeta = {
  isLocal: false,
  attempt: 1,
  namespace: 'default',
  taskToken: 'CiQ1YzY0…long…',
  activityId: '3',
  activityType: 'preflight',
  taskQueue: 'lifeboat',
  workflowId: 'backup-fastdeploy-manual-abc',
  workflowRunId: 'r1',
  workflowType: 'backupPlan',
  sdkComponent: 'worker',
  durationMs: 12,
};
const missingPath = () => ApplicationFailure.nonRetryable('preflight failed for plan fastdeploy:\n- missing on app (root@10.0.0.5:22): /home/fastdeploy/site/.env', 'MissingPath');

describe('LifeboatLogger', () => {
  it('logs an expected activity failure as one line naming the step, the run and the cause', () => {
    const { lines, logger } = capture('text');
    logger.warn('Activity failed', { ...activityMeta, error: missingPath() });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z \[WARN\] Activity failed: preflight in workflow backup-fastdeploy-manual-abc: MissingPath: preflight failed for plan fastdeploy: ⏎ - missing on app \(root@10\.0\.0\.5:22\): \/home\/fastdeploy\/site\/\.env$/);
    expect(lines[0]).not.toContain('\n');
    expect(lines[0]).not.toContain('node_modules');
  });

  it('does the same for Stalled (retried) and for a workflow failing with a typed activity failure inside', () => {
    const { lines, logger } = capture('text');
    logger.warn('Activity failed', { ...activityMeta, activityType: 'captureArtifact', error: ApplicationFailure.retryable('capture app/site: no progress for 600 s', 'Stalled') });
    const wrapped = new ActivityFailure('activity failed', 'preflight', '3', RetryState.NON_RETRYABLE_FAILURE, 'w', ApplicationFailure.nonRetryable('backup root has 1 GiB free, needs 3 GiB', 'InsufficientSpace'));
    logger.warn('Workflow failed', { namespace: 'default', taskQueue: 'lifeboat', workflowId: 'backup-x', runId: 'r', workflowType: 'backupPlan', error: wrapped });
    expect(lines[0]).toMatch(/\[WARN\] Activity failed: captureArtifact in workflow backup-fastdeploy-manual-abc: Stalled: capture app\/site: no progress for 600 s$/);
    expect(lines[1]).toMatch(/\[WARN\] Workflow failed: backupPlan in workflow backup-x: InsufficientSpace: backup root has 1 GiB free, needs 3 GiB$/);
  });

  it('a workflow failure that crossed from the workflow thread (structured clone: no type) is one line too', () => {
    const { lines, logger } = capture('text');
    const raised = ApplicationFailure.create({ message: 'preflight: preflight failed for plan gone:\n- missing on web (local): /srv/site', type: 'MissingPath', nonRetryable: true });
    raised.stack = ''; // as src/workflows/failures.ts raises them
    logger.warn('Workflow failed', { workflowId: 'backup-gone-1', workflowType: 'backupPlan', runId: 'r', error: structuredClone(raised) });
    expect(lines).toEqual([expect.stringMatching(/\[WARN\] Workflow failed: backupPlan in workflow backup-gone-1: preflight: preflight failed for plan gone: ⏎ - missing on web \(local\): \/srv\/site$/)]);
    // A bug in workflow code keeps its stack.
    logger.warn('Workflow failed', { workflowId: 'w', error: structuredClone(new TypeError('x is undefined')) });
    expect(lines[1]).toMatch(/TypeError: x is undefined\n\s+at /);
  });

  it('text: other entries are one line, meta included', () => {
    const { lines, logger } = capture('text');
    logger.info('lifeboat worker: task queue lifeboat on 127.0.0.1:7233 (default)', { taskQueue: 'lifeboat', address: '127.0.0.1:7233', namespace: 'default', more: { nested: [1, 2, 3] } });
    expect(lines).toEqual([expect.stringMatching(/\[INFO\] lifeboat worker: task queue lifeboat on 127\.0\.0\.1:7233 \(default\) \{ taskQueue: 'lifeboat', .* more: \{ nested: \[ 1, 2, 3 \] \} \}$/)]);
  });

  it('keeps the stack of an unexpected failure (a bug should be reportable)', () => {
    const { lines, logger } = capture('text');
    logger.warn('Activity failed', { ...activityMeta, error: new TypeError('cannot read properties of undefined') });
    expect(lines[0]).toContain('TypeError: cannot read properties of undefined');
    expect(lines[0]).toMatch(/\n\s+at /);
  });

  it('json: one object per line with time, level, message and meta; errors serialised', () => {
    const { lines, logger } = capture('json');
    logger.info('Worker state changed', { sdkComponent: 'worker', taskQueue: 'lifeboat', state: 'RUNNING' });
    logger.warn('Activity failed', { ...activityMeta, error: missingPath() });
    logger.error('Activity failed', { ...activityMeta, error: new Error('boom') });
    logger.debug('not shown at INFO');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('\n');
    const [state, expected, bug] = lines.map((l) => JSON.parse(l) as { time: string; level: string; message: string; meta: Record<string, unknown> });
    expect(state).toEqual({ time: expect.stringMatching(/Z$/), level: 'INFO', message: 'Worker state changed', meta: { sdkComponent: 'worker', taskQueue: 'lifeboat', state: 'RUNNING' } });
    expect(expected!.message).toMatch(/^Activity failed: preflight in workflow backup-fastdeploy-manual-abc: MissingPath: /);
    expect(expected!.meta).toMatchObject({ activityType: 'preflight', workflowId: 'backup-fastdeploy-manual-abc', errorType: 'MissingPath', attempt: 1 });
    expect(expected!.meta).not.toHaveProperty('error');
    expect(expected!.meta).not.toHaveProperty('taskToken');
    expect(bug!.meta.error).toMatchObject({ name: 'Error', message: 'boom', stack: expect.stringContaining('at ') });
  });

  it('uses the SDK timestamp when one is given', () => {
    const { lines, logger } = capture('json');
    logger.info('hello', { [Symbol.for('log_timestamp')]: 1_700_000_000_123_000_000n } as never);
    expect(JSON.parse(lines[0]!)).toEqual({ time: '2023-11-14T22:13:20.123Z', level: 'INFO', message: 'hello' });
  });
});
