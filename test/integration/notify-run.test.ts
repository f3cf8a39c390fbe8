// Notifications from real runs: a real worker backs up a local tree into local storage and reports to loopback
// receivers (node:http): a Healthchecks-style check that answers, a webhook that answers 500 and an ntfy topic on a
// port nobody listens on. The run's outcome never depends on them, and no URL or token reaches the history.
import { writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes, type ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PLAN, TIER } from '../../src/shared/search-attributes';
import type { BackupResult } from '../../src/shared/types';
import { lifeboatActivities } from '../../src/workers/worker';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('notify-run');
const taskQueue = uniqueName('notify-run');
const data = join(root, 'site');
const HC_UUID = '5f1c2a9e-0b7d-4c3e-9f21-7a6b5c4d3e2f';
const TOKEN = 'tk_secret_9d8c7b6a';
let t: TemporalFixture;
let receiver: { port: number; hits: Array<{ method: string; path: string; body: string; auth?: string }>; close(): Promise<void> };

/** One loopback server: /hc/* answers 200 (a healthy check), /hook/* answers 500 and echoes what it got. */
async function startReceiver(): Promise<typeof receiver> {
  const hits: (typeof receiver)['hits'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', path: req.url ?? '', body, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
      if (req.url?.startsWith('/hc/')) res.writeHead(200).end('OK');
      else res.writeHead(500).end(`cannot handle ${req.url} ${req.headers.authorization ?? ''}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Every string in a history, payload bytes decoded: what the Web UI or an export could show. */
function historyText(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(historyText).join('\n');
  if (value && typeof value === 'object') return Object.values(value).map(historyText).join('\n');
  return '';
}

/** A port that was free a moment ago: connections to it are refused. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

function planConfig(paths: string[]) {
  return { sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths }] }], storages: ['local'] };
}

async function run(plan: string): Promise<WorkflowHandle> {
  return t.client.workflow.start('backupPlan', {
    taskQueue,
    workflowId: uniqueName(`backup-${plan}`),
    args: [{ plan, tier: 'daily' }],
    typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: plan }, { key: TIER, value: 'daily' }]),
  });
}

beforeAll(async () => {
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'index.html'), '<h1>notify</h1>\n');
  receiver = await startReceiver();
  const refused = await closedPort();
  await writeFile(join(root, 'hc-url'), `http://127.0.0.1:${receiver.port}/hc/${HC_UUID}\n`, { mode: 0o600 });
  await writeFile(join(root, 'hook-url'), `http://127.0.0.1:${receiver.port}/hook/${TOKEN}\n`, { mode: 0o600 });
  await writeFile(join(root, 'ntfy-url'), `http://127.0.0.1:${refused}/lifeboat-${TOKEN}\n`, { mode: 0o600 });
  const configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue, uiUrl: 'http://127.0.0.1:8233' },
    storages: { local: { type: 'local', path: join(root, 'storage') } },
    notify: {
      check: { type: 'healthchecks', url: { file: join(root, 'hc-url') } },
      hook: { type: 'webhook', url: { file: join(root, 'hook-url') }, events: ['succeeded', 'failed'] },
      phone: { type: 'ntfy', url: { file: join(root, 'ntfy-url') }, events: ['succeeded'] },
    },
    plans: { good: planConfig([data]), broken: planConfig([join(root, 'no-such-dir')]) },
  });
  t = await temporalFixture(configPath, taskQueue, lifeboatActivities(configPath));
});

afterAll(async () => {
  await t?.close();
  await receiver?.close();
});

describe('notifications from real runs', () => {
  let handle: WorkflowHandle;
  let result: BackupResult;

  it('a good run pings /start then the check, and ends Completed although the webhook answers 500 and ntfy is down', async () => {
    handle = await run('good');
    result = (await handle.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    const hc = receiver.hits.filter((h) => h.path.startsWith('/hc/'));
    expect(hc.map((h) => h.path.replace(/\?.*/, ''))).toEqual([`/hc/${HC_UUID}/start`, `/hc/${HC_UUID}`]);
    const byTarget = Object.fromEntries((result.notifications ?? []).filter((n) => n.event === 'succeeded').map((n) => [n.target, n]));
    expect(byTarget.check).toMatchObject({ ok: true, type: 'healthchecks' });
    expect(byTarget.hook).toMatchObject({ ok: false, type: 'webhook', error: expect.stringContaining('HTTP 500') });
    expect(byTarget.phone).toMatchObject({ ok: false, type: 'ntfy', error: expect.stringContaining('ECONNREFUSED') });
    // The webhook got the run's facts (three attempts of the same body).
    const body = JSON.parse(receiver.hits.find((h) => h.path.startsWith('/hook/'))!.body) as Record<string, unknown>;
    expect(body).toMatchObject({ event: 'succeeded', plan: 'good', snapshot: result.snapshot, status: 'Completed', size_bytes: result.size_bytes });
    expect(body.duration_ms).toEqual(expect.any(Number));
    expect(String(body.link)).toContain(`/workflows/${handle.workflowId}/`);
  });

  it('no URL, token or check id is in the run history, the result or a delivery error', async () => {
    const text = historyText(await handle.fetchHistory()) + JSON.stringify(result);
    expect(text).toContain(result.snapshot); // the walk does see payloads
    for (const secret of [HC_UUID, TOKEN, '/hook/']) expect(text).not.toContain(secret);
  });

  it('a failed run pings /fail with the error text and still fails with its own type', async () => {
    const h = await run('broken');
    const err = await h.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toMatchObject({ type: 'MissingPath' });
    // No result to carry them: the webhook (500) and ntfy (down) failures ride in the failure's details.
    const failedTargets = (cause.details ?? []).flatMap((d) => (d as { notifications?: Array<{ target: string; ok: boolean }> }).notifications ?? []);
    expect(failedTargets.map((n) => n.target).sort()).toEqual(['hook']);
    const fail = receiver.hits.filter((x) => x.path.startsWith(`/hc/${HC_UUID}/fail`));
    expect(fail).toHaveLength(1);
    expect(fail[0]!.body).toContain('MissingPath');
    expect(fail[0]!.body).toContain('no-such-dir');
  });
});
