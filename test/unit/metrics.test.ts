// Lifeboat's own metrics: what a RunEvent and a scan of storage records turn into, in Prometheus text.
import { describe, expect, it } from 'vitest';
import { LifeboatMetrics } from '../../src/metrics/lifeboat-metrics';
import type { RunEvent } from '../../src/shared/types';

const backup = (over: Partial<RunEvent> = {}): RunEvent => ({ event: 'succeeded', plan: 'app', kind: 'backup', status: 'Completed', sizeBytes: 3338, bytesCaptured: 529_959, artifactsFailed: 0, durationMs: 12_500, ...over });

describe('LifeboatMetrics', () => {
  it('counts finished runs (not starts), keeps the last duration and size, adds bytes and artifact failures', async () => {
    const m = new LifeboatMetrics();
    m.initPlans(['app', 'db']);
    m.observe(backup({ event: 'started', status: 'Running' }));
    m.observe(backup());
    m.observe(backup({ event: 'partially_failed', status: 'PartiallyFailed', artifactsFailed: 2, sizeBytes: 4000, durationMs: 9_000 }));
    m.observe({ event: 'verify_failed', plan: 'app', kind: 'verify', status: 'Failed', durationMs: 1_000 });
    const text = await m.registry.metrics();
    expect(text).toContain('lifeboat_runs_total{plan="app",kind="backup",status="Completed"} 1');
    expect(text).toContain('lifeboat_runs_total{plan="app",kind="backup",status="PartiallyFailed"} 1');
    expect(text).toContain('lifeboat_runs_total{plan="app",kind="verify",status="Failed"} 1');
    expect(text).not.toContain('status="Running"');
    expect(text).toContain('lifeboat_run_duration_seconds{plan="app",kind="backup",status="Completed"} 12.5');
    expect(text).toContain('lifeboat_snapshot_size_bytes{plan="app"} 4000');
    expect(text).toContain('lifeboat_artifact_failures_total{plan="app"} 2');
    expect(text).toContain('lifeboat_artifact_failures_total{plan="db"} 0');
    expect(text).toContain(`lifeboat_bytes_captured_total{plan="app"} ${2 * 529_959}`);
  });

  it('takes freshness from a scan of storage, per plan and storage, and marks unreadable storages', async () => {
    const m = new LifeboatMetrics();
    m.applyScan({
      times: [
        { plan: 'app', storage: 'minio', lastSuccess: 1_763_781_133.5, lastVerified: 1_763_700_000 },
        { plan: 'app', storage: 'local' },
      ],
      newestSize: new Map([['app', 3338]]),
      readable: ['minio', 'local'],
      unreadable: [{ storage: 'b2', error: 'timeout' }],
    });
    const text = await m.registry.metrics();
    expect(text).toContain('lifeboat_backup_last_success_timestamp_seconds{plan="app",storage="minio"} 1763781133.5');
    expect(text).toContain('lifeboat_verify_last_success_timestamp_seconds{plan="app",storage="minio"} 1763700000');
    // No record yet: no sample at all, rather than a timestamp of 0 (1970) that would page someone.
    expect(text).not.toContain('lifeboat_backup_last_success_timestamp_seconds{plan="app",storage="local"}');
    expect(text).toContain('lifeboat_snapshot_size_bytes{plan="app"} 3338');
    expect(text).toContain('lifeboat_storage_readable{storage="b2"} 0');
  });
});
