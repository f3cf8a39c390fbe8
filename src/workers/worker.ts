// The backup-host worker: runs Lifeboat's workflows and activities on one task queue.
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createBackupActivities } from '../activities/backup';
import { createQuiesceActivities } from '../activities/quiesce';
import { createRestoreActivities } from '../activities/restore';
import { createRetentionActivities } from '../activities/retention';
import { createPlanLockActivities } from '../activities/legacy-plan-lock';
import { createNotifyActivities } from '../activities/notify';
import { createFreshnessActivities } from '../activities/freshness';
import { hashInProcesses } from '../snapshot/hash-files';
import { loadConfig } from '../config/load';
import { startMetrics, stopMetrics, type MetricsService } from '../metrics';
import { openNativeConnection } from '../temporal/connection';
import type { LogFormat } from './logger';
import { installWorkerRuntime } from './runtime';
import { workflowCode } from './workflow-bundle';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface LifeboatWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** lifeboat.yaml on this host; activities re-read it, so secrets are resolved here and nowhere else. */
  configPath: string;
  /** A pre-built bundle (bundleWorkflowCode) saves the webpack step; tests share one. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Workflow tests register fake activities with the same names; production uses lifeboatActivities. */
  activities?: object;
}

export function lifeboatActivities(configPath: string) {
  return {
    ...createBackupActivities({ configPath }),
    ...createQuiesceActivities(),
    ...createRestoreActivities(),
    ...createRetentionActivities(),
    ...createNotifyActivities({ configPath }),
    ...createFreshnessActivities({ configPath }),
    // Only runs started before patch CORRECT_UNDER_FAILURE call these (src/workflows/patches.ts).
    ...createPlanLockActivities({ configPath }),
  };
}

export type LifeboatActivities = ReturnType<typeof lifeboatActivities>;

export function createLifeboatWorker(opts: LifeboatWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    // Given (tests share one), else dist/workflows.js from the build while current, else the sources (webpack).
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : workflowCode()),
    activities: opts.activities ?? lifeboatActivities(opts.configPath),
    // Capture-heavy work is I/O bound but spawns processes: keep concurrency modest on a small backup host.
    maxConcurrentActivityTaskExecutions: 8,
    shutdownGraceTime: '30s',
    // Cancellation reaches an activity only with a heartbeat response: send them often enough that a
    // cancelled run stops its dumps and transfers within seconds, not the default ~48 s.
    maxHeartbeatThrottleInterval: '3s',
    defaultHeartbeatThrottleInterval: '3s',
  });
}

/** `lifeboat worker`: runs until SIGINT/SIGTERM (the SDK's default shutdown signals). */
export async function runWorker(configPath: string, opts: { logFormat?: LogFormat } = {}): Promise<void> {
  const config = await loadConfig(configPath);
  hashInProcesses(); // this process lives for months: what hashing allocates must not stay in it
  // Before any connection: the Runtime (logger, SDK metrics exporter) can be installed once per process.
  const runtime = await installWorkerRuntime({ logFormat: opts.logFormat ?? 'text', sdkMetrics: Boolean(config.metrics) });
  const { address, namespace, taskQueue } = config.temporal;
  const connection = await openNativeConnection(config.temporal);
  let metrics: MetricsService | undefined;
  try {
    // Metrics first: a port in use is then its own one-line error, not a connection still held by a Worker.
    if (config.metrics) {
      metrics = await startMetrics({ configPath, listen: config.metrics.listen, logger: runtime.logger, ...(runtime.sdkMetricsUrl ? { sdkMetricsUrl: runtime.sdkMetricsUrl } : {}) });
      runtime.logger.info(`lifeboat metrics: listening on http://${config.metrics.listen}/metrics`, { listen: config.metrics.listen });
    }
    const worker = await createLifeboatWorker({ connection, namespace, taskQueue, configPath });
    const tls = config.temporal.tls || config.temporal.apiKey ? ', TLS' : '';
    runtime.logger.info(`lifeboat worker: task queue ${taskQueue} on ${address} (${namespace}${tls})`, { taskQueue, address, namespace });
    await worker.run();
  } finally {
    if (metrics) await stopMetrics(metrics);
    await connection.close();
  }
}
