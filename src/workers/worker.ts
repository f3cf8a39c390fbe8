// The backup-host worker: runs Lifeboat's workflows and activities on one task queue.
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createBackupActivities } from '../activities/backup';
import { createQuiesceActivities } from '../activities/quiesce';
import { createRestoreActivities } from '../activities/restore';
import { createRetentionActivities } from '../activities/retention';
import { createPlanLockActivities } from '../activities/legacy-plan-lock';
import { loadConfig } from '../config/load';

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
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
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
export async function runWorker(configPath: string): Promise<void> {
  const config = await loadConfig(configPath);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  try {
    const worker = await createLifeboatWorker({ connection, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, configPath });
    console.error(`lifeboat worker: task queue ${config.temporal.taskQueue} on ${config.temporal.address} (${config.temporal.namespace})`);
    await worker.run();
  } finally {
    await connection.close();
  }
}
