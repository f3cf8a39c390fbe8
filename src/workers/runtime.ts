// The worker process's one Temporal Runtime, installed before any connection: Lifeboat's logger (text or JSON,
// expected failures condensed; core's own logs forwarded to it) and, when metrics are on, the SDK's Prometheus
// exporter on an internal loopback port that the metrics server (src/metrics) reads and re-serves.
import { createServer } from 'node:net';
import type { Logger } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { LifeboatLogger, type LogFormat } from './logger';

export interface WorkerRuntime {
  logger: Logger;
  /** Where the SDK's Prometheus text is, when this call installed the Runtime with metrics. */
  sdkMetricsUrl?: string;
}

export interface RuntimeSettings {
  logFormat: LogFormat;
  sdkMetrics: boolean;
}

export async function installWorkerRuntime(settings: RuntimeSettings): Promise<WorkerRuntime> {
  // Runtime.install works once per process: a host that installed its own (a test) keeps it, without SDK metrics.
  if (Runtime._instance) return { logger: Runtime.instance().logger };
  const logger = new LifeboatLogger(settings.logFormat);
  const port = settings.sdkMetrics ? await freeLoopbackPort() : undefined;
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      ...(port ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } } : {}),
    },
  });
  return { logger, ...(port ? { sdkMetricsUrl: `http://127.0.0.1:${port}/metrics` } : {}) };
}

/** Core binds the exporter itself and cannot report a port it chose: pick a free one for it. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
