// What a notification says: the title, the plain text and the JSON body, from a RunEvent. Pure.
import { describe, expect, it } from 'vitest';
import { MAX_ERROR_BYTES, composeMessage, formatDuration, jsonBody, runLink, tailBytes, textBody } from '../../src/notify/message';
import { redact, urlSecrets } from '../../src/notify/delivery';
import { pingUrl } from '../../src/notify/healthchecks';
import type { RunEvent } from '../../src/shared/types';

const ctx = { uiUrl: 'http://127.0.0.1:8233/', namespace: 'default' };
const RUN = { workflowId: 'backup-app-daily-1', runId: '0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b' };
const LINK = 'http://127.0.0.1:8233/namespaces/default/workflows/backup-app-daily-1/0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/history';

const failed: RunEvent = {
  event: 'failed',
  plan: 'app',
  kind: 'backup',
  tier: 'daily',
  snapshot: 'app-20261122T031213',
  status: 'Failed',
  durationMs: 72_000,
  failingStep: 'app:appdb',
  errorType: 'MissingPath',
  error: 'preflight failed for plan app:\n- missing on app (root@10.0.0.5:22): /home/app/.env',
  ...RUN,
};

const succeeded: RunEvent = {
  event: 'succeeded',
  plan: 'app',
  kind: 'backup',
  tier: 'daily',
  snapshot: 'app-20261122T031213',
  status: 'Completed',
  sizeBytes: 3338,
  bytesCaptured: 529_959,
  durationMs: 42_500,
  ...RUN,
};

describe('titles', () => {
  it.each<[Partial<RunEvent>, string]>([
    [{}, '[lifeboat] backup of plan app FAILED (MissingPath) at app:appdb'],
    [{ status: 'Cancelled', errorType: 'Cancelled', failingStep: undefined }, '[lifeboat] backup of plan app CANCELLED (Cancelled)'],
    [{ status: 'TimedOut', errorType: 'PlanTimeout', failingStep: 'run timeout' }, '[lifeboat] backup of plan app TIMED OUT (PlanTimeout) at run timeout'],
    [{ event: 'restart_failed', errorType: 'RestartFailed', failingStep: 'restart' }, '[lifeboat] backup of plan app RESTART FAILED (RestartFailed) at restart'],
    [{ event: 'verify_failed', kind: 'verify', errorType: 'VerificationFailed', failingStep: 'restore drill' }, '[lifeboat] restore drill of plan app FAILED (VerificationFailed) at restore drill'],
    [{ event: 'partially_failed', status: 'PartiallyFailed', artifactsFailed: 2 }, '[lifeboat] backup of plan app PARTIALLY FAILED (2 artifacts failed)'],
    [{ event: 'started', status: 'Running' }, '[lifeboat] backup of plan app started (daily)'],
    [{ event: 'succeeded', status: 'Completed' }, '[lifeboat] backup of plan app succeeded: app-20261122T031213'],
    [{ event: 'stale', kind: 'freshness', status: 'stale', reason: 'newest snapshot 27h old (maxAge 26h)' }, '[lifeboat] plan app is STALE: newest snapshot 27h old (maxAge 26h)'],
    [{ event: 'recovered', kind: 'freshness', status: 'fresh' }, '[lifeboat] plan app is fresh again: app-20261122T031213'],
  ])('%o → %s', (change, title) => {
    expect(composeMessage({ ...failed, ...change }, ctx).title).toBe(title);
  });

  it('failures are failures (ntfy priority, healthchecks /fail); a start or success is not', () => {
    expect(composeMessage(failed, ctx).failure).toBe(true);
    expect(composeMessage({ ...failed, event: 'stale' }, ctx).failure).toBe(true);
    expect(composeMessage(succeeded, ctx).failure).toBe(false);
    expect(composeMessage({ ...failed, event: 'recovered' }, ctx).failure).toBe(false);
  });
});

describe('text body', () => {
  it('a success carries plan, tier, snapshot, status, size, duration and the link to the run', () => {
    const text = textBody(composeMessage(succeeded, ctx));
    expect(text).toBe(
      [
        'plan:     app',
        'tier:     daily',
        'snapshot: app-20261122T031213',
        'status:   Completed',
        'size:     3.3 KiB stored, 517.5 KiB captured',
        'duration: 42 s',
        `run:      ${LINK}`,
      ].join('\n'),
    );
  });

  it('a failure adds the failing step, the error type and the error', () => {
    const text = textBody(composeMessage(failed, ctx), { withTitle: true });
    expect(text.split('\n')[0]).toBe('[lifeboat] backup of plan app FAILED (MissingPath) at app:appdb');
    expect(text).toContain('failing step: app:appdb');
    expect(text).toContain('error type:   MissingPath');
    expect(text).toContain('duration:     1 min 12 s');
    expect(text).toMatch(/\n\nerror:\npreflight failed for plan app:\n- missing on app .*\.env$/);
  });

  it('services left down say so first', () => {
    expect(textBody(composeMessage({ ...failed, event: 'restart_failed' }, ctx))).toMatch(/^Services stopped for the copy could not be started again/);
  });

  it('without temporal.uiUrl (or without a run) there is no link', () => {
    expect(composeMessage(failed, { namespace: 'default' }).link).toBeUndefined();
    expect(composeMessage({ ...failed, runId: undefined }, ctx).link).toBeUndefined();
    expect(textBody(composeMessage(failed, { namespace: 'default' }))).not.toContain('run:');
  });

  it('fits a byte budget by dropping the head of the error, keeping the summary and the error end', () => {
    const long = `${'x'.repeat(50_000)}\nthe cause: disk full`;
    const text = textBody(composeMessage({ ...failed, error: long }, ctx), { withTitle: true, maxBytes: MAX_ERROR_BYTES });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
    expect(Buffer.byteLength(text)).toBeGreaterThan(MAX_ERROR_BYTES - 8);
    expect(text).toMatch(/^\[lifeboat\] backup of plan app FAILED/);
    expect(text).toContain('snapshot:     app-20261122T031213');
    expect(text).toMatch(/\n\nerror:\n…x+\nthe cause: disk full$/);
  });
});

describe('JSON body', () => {
  it('carries every field, raw and human, and leaves out what the event does not have', () => {
    const body = jsonBody(succeeded, composeMessage(succeeded, ctx), new Date('2026-11-22T03:13:00Z'));
    expect(body).toEqual({
      source: 'lifeboat',
      event: 'succeeded',
      title: '[lifeboat] backup of plan app succeeded: app-20261122T031213',
      text: '[lifeboat] backup of plan app succeeded: app-20261122T031213',
      plan: 'app',
      kind: 'backup',
      tier: 'daily',
      snapshot: 'app-20261122T031213',
      status: 'Completed',
      size_bytes: 3338,
      size: '3.3 KiB',
      bytes_captured: 529_959,
      duration_ms: 42_500,
      duration: '42 s',
      workflow_id: RUN.workflowId,
      run_id: RUN.runId,
      link: LINK,
      at: '2026-11-22T03:13:00.000Z',
    });
  });

  it('a failure carries the step, the error type and at most the last 10 KB of the error', () => {
    const body = jsonBody({ ...failed, error: `head ${'y'.repeat(20_000)} tail` }, composeMessage(failed, ctx), new Date());
    expect(body).toMatchObject({ failing_step: 'app:appdb', error_type: 'MissingPath', status: 'Failed' });
    expect(Buffer.byteLength(body.error as string)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
    expect(body.error).toMatch(/^…y+ tail$/);
  });
});

describe('helpers', () => {
  it('runLink: the run history page, ids encoded', () => {
    expect(runLink('https://temporal.example.com/', 'prod ns', 'backup/app', 'r1')).toBe('https://temporal.example.com/namespaces/prod%20ns/workflows/backup%2Fapp/r1/history');
  });

  it.each([
    [850, '850 ms'],
    [4200, '4.2 s'],
    [42_500, '42 s'],
    [60_000, '1 min'],
    [72_000, '1 min 12 s'],
    [7_500_000, '2 h 5 min'],
    [97_200_000, '1 d 3 h'],
  ])('formatDuration(%i) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('tailBytes keeps the last bytes without splitting a character', () => {
    expect(tailBytes('short', 10)).toBe('short');
    const t = tailBytes('ä'.repeat(100), 11); // 2 bytes each; "…" is 3
    expect(t).toBe(`…${'ä'.repeat(4)}`);
    expect(Buffer.byteLength(tailBytes('é'.repeat(10_000), MAX_ERROR_BYTES))).toBeLessThanOrEqual(MAX_ERROR_BYTES);
  });

  it('redact removes the URL, its path, its segments, query values and tokens, also URL-encoded', () => {
    const url = 'https://hc.example.com/ping/8f0e6c1a-aaaa-bbbb-cccc-000000000001?key=s3cr3t-key';
    const secrets = [...urlSecrets(url), 'tok_ABCDEF'];
    const text = redact(
      `POST ${url} failed; path /ping/8f0e6c1a-aaaa-bbbb-cccc-000000000001; id 8f0e6c1a-aaaa-bbbb-cccc-000000000001; key=s3cr3t-key; ${encodeURIComponent(url)}; Bearer tok_ABCDEF`,
      secrets,
    );
    expect(text).not.toMatch(/8f0e6c1a|s3cr3t|tok_ABCDEF|\/ping/);
    expect(text).toContain('[redacted]');
  });

  it('pingUrl: /start, plain, /fail before the query; the run id as rid', () => {
    const base = 'https://hc-ping.com/abc-uuid/';
    expect(pingUrl(base, 'start')).toBe('https://hc-ping.com/abc-uuid/start');
    expect(pingUrl(base, 'success')).toBe('https://hc-ping.com/abc-uuid');
    expect(pingUrl('https://hc-ping.com/abc-uuid?x=1', 'fail')).toBe('https://hc-ping.com/abc-uuid/fail?x=1');
    expect(pingUrl(base, 'fail', RUN.runId)).toBe(`https://hc-ping.com/abc-uuid/fail?rid=${RUN.runId}`);
    expect(pingUrl(base, 'fail', 'not-a-uuid')).toBe('https://hc-ping.com/abc-uuid/fail');
  });
});
