// The worker's Prometheus endpoint: started by runWorker when `metrics.listen` is set. Freshness comes from
// storage (at start, every 10 minutes, and for a plan after each of its backups and drills); run counters come
// from observeRunEvent, which the reportEvent activity calls in the same process.
import type { Server } from 'node:http';
import pLimit from 'p-limit';
import type { Logger } from '@temporalio/common';
import { loadConfig } from '../config/load';
import type { RunEvent } from '../shared/types';
import { LifeboatMetrics } from './lifeboat-metrics';
import { listenMetrics } from './server';
import { scanStoredTimes } from './stored-times';
import { errorLine } from '../shared/errors';

export const RESCAN_EVERY_MS = 10 * 60_000;

export interface MetricsOptions {
  configPath: string;
  listen: string;
  /** The SDK's own exporter (src/workers/runtime.ts); without it only Lifeboat's metrics are served. */
  sdkMetricsUrl?: string;
  logger: Logger;
  rescanEveryMs?: number;
}

export class MetricsService {
  readonly metrics = new LifeboatMetrics();
  private server?: Server;
  private timer?: NodeJS.Timeout;
  // Scans run one after another: an older full scan never lands after a newer plan refresh.
  private readonly scans = pLimit(1);

  constructor(private readonly opts: MetricsOptions) {}

  async start(): Promise<void> {
    const config = await loadConfig(this.opts.configPath);
    this.metrics.initPlans(Object.keys(config.plans));
    const ready = this.refresh();
    this.server = await listenMetrics(this.opts.listen, { registry: this.metrics.registry, ready, ...(this.opts.sdkMetricsUrl ? { sdkMetricsUrl: this.opts.sdkMetricsUrl } : {}) });
    this.timer = setInterval(() => void this.refresh(), this.opts.rescanEveryMs ?? RESCAN_EVERY_MS).unref();
  }

  /** Re-reads storage records (all plans, or one); never rejects: a failure is logged and the old values stay. */
  refresh(plan?: string): Promise<void> {
    return this.scans(() => this.scan(plan));
  }

  async observe(event: RunEvent): Promise<void> {
    this.metrics.observe(event);
    if (event.event !== 'started' && (event.kind === 'backup' || event.kind === 'verify')) await this.refresh(event.plan);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async scan(plan?: string): Promise<void> {
    try {
      const scan = await scanStoredTimes(await loadConfig(this.opts.configPath), plan);
      this.metrics.applyScan(scan);
      for (const u of scan.unreadable) this.opts.logger.warn(`metrics: cannot read storage ${u.storage}: ${u.error}`, { storage: u.storage });
    } catch (err) {
      this.opts.logger.warn(`metrics: cannot read snapshot records: ${errorLine(err)}`);
    }
  }
}

let active: MetricsService | undefined;

/** Starts the endpoint; observeRunEvent reports to it from now on. */
export async function startMetrics(opts: MetricsOptions): Promise<MetricsService> {
  const service = new MetricsService(opts);
  await service.start();
  active = service;
  return service;
}

export async function stopMetrics(service: MetricsService): Promise<void> {
  if (active === service) active = undefined;
  await service.close();
}

/**
 * A finished run (or a start, which only notifications care about): updates the run metrics and re-reads the
 * plan's timestamps from storage. A no-op when metrics are off; never rejects, so it cannot fail a report.
 */
export function observeRunEvent(event: RunEvent): Promise<void> {
  return active ? active.observe(event).catch(() => undefined) : Promise.resolve();
}
