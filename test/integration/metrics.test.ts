// Prometheus metrics on a real `lifeboat worker` process (its own Runtime with the SDK's exporter, JSON logs):
// after a real backup and restore drill, /metrics carries the SDK's workflow counters and Lifeboat's timestamps,
// equal to what the signed records in storage say; after a worker restart with no run in between, the same
// values. An expected typed failure (MissingPath) is one log line on the worker, not a stack trace.
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../scripts/lib/services';
import { loadConfig } from '../../src/config/load';
import { findSnapshots } from '../../src/restore/fetch';
import type { BackupResult, SnapshotVerification } from '../../src/shared/types';
import { trustPolicyOf } from '../../src/snapshot/signing';
import { openStorage } from '../../src/storage';
import { tempDir, uniqueName, writeConfig } from '../support/fixtures';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const root = await tempDir('metrics');
const taskQueue = uniqueName('metrics-it');
let configPath: string;
let metricsUrl: string;
let worker: WorkerProcess | undefined;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  const data = join(root, 'data');
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'page.html'), '<h1>metered</h1>\n');
  const signingKey = join(root, 'signing.pem');
  await writeFile(signingKey, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const listen = `127.0.0.1:${await freePort()}`;
  metricsUrl = `http://${listen}/metrics`;
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    metrics: { listen },
    signing: { key: { file: signingKey } },
    storages: { local: { type: 'local', path: join(root, 'store') } },
    plans: {
      metered: { storages: ['local'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [data] }] }] },
      gone: { storages: ['local'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [join(root, 'does-not-exist')] }] }] },
    },
  });
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection, namespace: 'default' });
  worker = startWorkerProcess(configPath, ['--log-format', 'json']);
  await worker.waitForLine(/lifeboat worker: task queue/);
});

afterAll(async () => {
  await worker?.stop();
  await connection?.close();
  await rm(root, { recursive: true, force: true });
});

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Every sample of one metric in Prometheus text format. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)`).exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  return samples(text, name).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  return res.text();
}

/** Polls until `check` passes on a scrape (run metrics arrive when the run's report activity has run). */
async function scrapeUntil(check: (text: string) => boolean, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    text = await scrape();
    if (check(text)) return text;
    await new Promise((r) => setTimeout(r, 250));
  }
  return text;
}

/** The newest good, trusted record of the plan, read from storage as `snapshots list` reads it. */
async function newestRecord(plan: string) {
  const config = await loadConfig(configPath);
  const listing = await findSnapshots({ local: await openStorage('local', config.storages.local!) }, { plan, trust: await trustPolicyOf(config.signing) });
  return listing[0]!.record;
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

describe('metrics on the worker', () => {
  let backupAt: number;
  let verifiedAt: number;

  it('serves the SDK workflow counters and Lifeboat timestamps equal to the newest record', async () => {
    const result = (await client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('metered'), args: [{ plan: 'metered', tier: 'manual' }] })) as BackupResult;
    expect(result.status).toBe('Completed');
    const record = await newestRecord('metered');
    expect(record.snapshot).toBe(result.snapshot);
    backupAt = seconds(record.created_at);

    const labels = { plan: 'metered', storage: 'local' };
    const text = await scrapeUntil((t) => Math.abs((value(t, 'lifeboat_backup_last_success_timestamp_seconds', labels) ?? 0) - backupAt) <= 1 && value(t, 'lifeboat_runs_total', { plan: 'metered', kind: 'backup', status: 'Completed' }) === 1);
    // The SDK's own metrics, from the Runtime's Prometheus exporter, in the same scrape.
    expect(samples(text, 'temporal_workflow_completed').reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(1);
    expect(samples(text, 'temporal_activity_execution_latency_count').length).toBeGreaterThan(0);
    // Refreshed from storage when the run reported its end (the reportEvent activity calls observeRunEvent).
    expect(value(text, 'lifeboat_backup_last_success_timestamp_seconds', labels)).toBeCloseTo(backupAt, 0);
    // Lifeboat's run metrics, from the run's report.
    expect(value(text, 'lifeboat_runs_total', { plan: 'metered', kind: 'backup', status: 'Completed' })).toBe(1);
    expect(value(text, 'lifeboat_snapshot_size_bytes', { plan: 'metered' })).toBe(record.size_bytes);
    expect(value(text, 'lifeboat_run_duration_seconds', { plan: 'metered', kind: 'backup', status: 'Completed' })).toBeGreaterThan(0);
    expect(value(text, 'lifeboat_artifact_failures_total', { plan: 'metered' })).toBe(0);
    expect(value(text, 'lifeboat_bytes_captured_total', { plan: 'metered' })).toBeGreaterThan(0);
    expect(value(text, 'lifeboat_storage_readable', { storage: 'local' })).toBe(1);
  });

  it('a passed restore drill sets the verify timestamp', async () => {
    const [drill] = (await client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('metered-verify'), args: [{ plan: 'metered' }] })) as SnapshotVerification[];
    expect(drill?.ok).toBe(true);
    verifiedAt = seconds(drill!.verified_at);
    const labels = { plan: 'metered', storage: 'local' };
    const text = await scrapeUntil((t) => Math.abs((value(t, 'lifeboat_verify_last_success_timestamp_seconds', labels) ?? 0) - verifiedAt) <= 1);
    expect(value(text, 'lifeboat_verify_last_success_timestamp_seconds', labels)).toBeCloseTo(verifiedAt, 0);
  });

  it('an expected typed failure is one line in the worker log (JSON), not a stack trace', async () => {
    const before = worker!.lines.length;
    const failed = await client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('gone'), args: [{ plan: 'gone', tier: 'manual' }] }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    await worker!.waitForLine(/"errorType":"MissingPath"/);
    await new Promise((r) => setTimeout(r, 500)); // the workflow's own failure line, if any, follows the activity's
    const lines = worker!.lines.slice(before).filter((l) => l.trim());
    const entries = lines.map((l) => JSON.parse(l) as { level: string; message: string; meta?: Record<string, unknown> });
    const missing = entries.filter((e) => e.meta?.errorType === 'MissingPath');
    expect(missing.find((e) => e.meta?.activityType === 'preflight')?.message).toMatch(/^Activity failed: preflight in workflow gone-.*: MissingPath: .*does-not-exist/);
    // The workflow's own failure line (it crossed from the workflow thread without its type): one line as well.
    expect(entries.find((e) => e.message.startsWith('Workflow failed'))?.message).toMatch(/^Workflow failed: backupPlan in workflow gone-.*: preflight: .*does-not-exist/);
    expect(lines.join('\n')).not.toMatch(/\n\s+at |node_modules/);
  });

  it('after a worker restart with no run in between, the timestamps are read back from storage', async () => {
    await worker!.stop();
    worker = startWorkerProcess(configPath, ['--log-format', 'json']);
    await worker.waitForLine(/lifeboat worker: task queue/);
    const text = await scrape(); // no polling: the first answer waits for the scan of storage
    const labels = { plan: 'metered', storage: 'local' };
    expect(value(text, 'lifeboat_backup_last_success_timestamp_seconds', labels)).toBeCloseTo(backupAt, 0);
    expect(value(text, 'lifeboat_verify_last_success_timestamp_seconds', labels)).toBeCloseTo(verifiedAt, 0);
    expect(value(text, 'lifeboat_backup_last_success_timestamp_seconds', { plan: 'gone', storage: 'local' })).toBeUndefined();
    // Run counters are the process's own (Prometheus handles the reset); they start at zero, not absent.
    expect(value(text, 'lifeboat_artifact_failures_total', { plan: 'metered' })).toBe(0);
    // Every log line of the new worker is JSON too.
    for (const line of worker.lines.filter((l) => l.trim())) expect(() => JSON.parse(line)).not.toThrow();
  });
});
