// Lifeboat's own Prometheus metrics (prom-client, a registry per instance): freshness read from storage, and what
// each finished run reported (RunEvent).
import { Counter, Gauge, Registry } from 'prom-client';
import type { RunEvent } from '../shared/types';
import type { StorageScan } from './stored-times';

export class LifeboatMetrics {
  readonly registry = new Registry();
  private readonly lastBackup = this.gauge('lifeboat_backup_last_success_timestamp_seconds', 'Creation time of the newest good snapshot in storage (Unix seconds)', ['plan', 'storage']);
  private readonly lastVerify = this.gauge('lifeboat_verify_last_success_timestamp_seconds', 'When the newest passed restore drill ran (Unix seconds)', ['plan', 'storage']);
  private readonly size = this.gauge('lifeboat_snapshot_size_bytes', "Stored size of the plan's newest snapshot", ['plan']);
  private readonly duration = this.gauge('lifeboat_run_duration_seconds', 'Duration of the last run of this plan, kind and status', ['plan', 'kind', 'status']);
  private readonly storageReadable = this.gauge('lifeboat_storage_readable', '1 when the last scan could list the storage, 0 when it could not', ['storage']);
  private readonly artifactFailures = this.counter('lifeboat_artifact_failures_total', 'Optional artifacts that failed (partially failed runs)', ['plan']);
  private readonly bytesCaptured = this.counter('lifeboat_bytes_captured_total', 'Bytes captured from the sources', ['plan']);
  private readonly runs = this.counter('lifeboat_runs_total', 'Finished runs by plan, kind and status', ['plan', 'kind', 'status']);

  /** Counters start at 0 for every plan, so `increase()` sees the first failure. */
  initPlans(plans: string[]): void {
    for (const plan of plans) {
      this.artifactFailures.inc({ plan }, 0);
      this.bytesCaptured.inc({ plan }, 0);
    }
  }

  applyScan(scan: StorageScan): void {
    for (const t of scan.times) {
      const labels = { plan: t.plan, storage: t.storage };
      if (t.lastSuccess !== undefined) this.lastBackup.set(labels, t.lastSuccess);
      if (t.lastVerified !== undefined) this.lastVerify.set(labels, t.lastVerified);
    }
    for (const [plan, bytes] of scan.newestSize) this.size.set({ plan }, bytes);
    for (const storage of scan.readable) this.storageReadable.set({ storage }, 1);
    for (const { storage } of scan.unreadable) this.storageReadable.set({ storage }, 0);
  }

  /** A run's end (not its start): counts, duration, failures, bytes; a backup's size. */
  observe(event: RunEvent): void {
    if (event.event === 'started') return;
    const { plan, kind, status } = event;
    this.runs.inc({ plan, kind, status });
    if (event.durationMs !== undefined) this.duration.set({ plan, kind, status }, event.durationMs / 1000);
    if (event.artifactsFailed) this.artifactFailures.inc({ plan }, event.artifactsFailed);
    if (event.bytesCaptured) this.bytesCaptured.inc({ plan }, event.bytesCaptured);
    if (kind === 'backup' && event.sizeBytes !== undefined) this.size.set({ plan }, event.sizeBytes);
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
}
