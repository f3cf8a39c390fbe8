// Notifications reach real receivers on loopback: a node:http server stands in for the webhook receiver, ntfy and
// Healthchecks (each is plain HTTP; what the test checks is exactly what those services read), and smtp-server
// is a real SMTP server with STARTTLS under a CA made here with openssl. Configs use secret references (env
// vars and files), as on a worker. No Temporal: sendNotifications is what the reportEvent activity calls.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createNotifyActivities } from '../../src/activities/notify';
import { parseConfig } from '../../src/config/load';
import { sendNotifications } from '../../src/notify/send';
import type { NotificationResult, RunEvent } from '../../src/shared/types';

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const HC_UUID = '5b1c0e1e-8d9a-4a53-9b7e-1f0a2c3d4e5f';
const NTFY_TOPIC = 'lifeboat-alerts-7f3kq9';
const HOOK_TOKEN = 'hook-path-token-Q8zX2';
const NTFY_TOKEN = 'tk_ntfyAccessToken0123';
const HEADER_SECRET = 'x-secret-header-value-42';
const SMTP_PASSWORD = 'smtp-pass-Zq81!';
const RUN_ID = '0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const WORKFLOW_ID = 'backup-app-daily-20261122T031213';
const LINK = `http://127.0.0.1:8233/namespaces/default/workflows/${WORKFLOW_ID}/${RUN_ID}/history`;

const run = { plan: 'app', kind: 'backup', tier: 'daily', snapshot: 'app-20261122T031213', workflowId: WORKFLOW_ID, runId: RUN_ID } as const;
const started: RunEvent = { ...run, event: 'started', status: 'Running' };
const succeeded: RunEvent = { ...run, event: 'succeeded', status: 'Completed', sizeBytes: 48_213_772, bytesCaptured: 181_400_112, durationMs: 192_400 };
const ERROR = 'capture app:appdb: pg_dump: error: connection to server at "10.0.0.5", port 5432 failed: FATAL: password authentication failed for user "app"';
const failed: RunEvent = { ...run, event: 'failed', status: 'Failed', durationMs: 31_250, failingStep: 'app:appdb', errorType: 'AuthFailed', error: ERROR };

let dir: string;
let receiver: { base: string; requests: Received[]; close(): Promise<void> };
let deadPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lifeboat-notify-'));
  receiver = await startReceiver();
  deadPort = await unusedPort();
});

afterAll(async () => {
  await receiver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A secret in a file (mode 600), as `{ file }` references want it. */
function secretFile(name: string, value: string): { file: string } {
  const file = join(dir, name);
  writeFileSync(file, `${value}\n`);
  chmodSync(file, 0o600);
  return { file };
}

/** A secret in an environment variable, as `{ env }` references want it. */
function secretEnv(name: string, value: string): { env: string } {
  process.env[name] = value;
  return { env: name };
}

/** `uiUrl: null`: a config without temporal.uiUrl. */
function config(notify: Record<string, unknown>, uiUrl: string | null = 'http://127.0.0.1:8233') {
  return parseConfig(configYaml(notify, uiUrl));
}

function configYaml(notify: Record<string, unknown>, uiUrl: string | null = 'http://127.0.0.1:8233'): string {
  return stringify({
    temporal: uiUrl ? { uiUrl } : {},
    backupRoot: '/srv/lifeboat',
    storages: { disk: { type: 'local', path: '/mnt/backups' } },
    notify,
    plans: { app: { storages: ['disk'], sources: [{ name: 'app', host: 'local', artifacts: [{ name: 'appdb', type: 'postgres', database: 'app' }] }] } },
  });
}

/** Requests that reached the receiver since `from`, under `prefix`. */
const requestsTo = (prefix: string, from = 0) => receiver.requests.slice(from).filter((r) => r.path.startsWith(prefix));
const ok = (target: string, type: NotificationResult['type'], event: NotificationResult['event']) => ({ target, type, event, ok: true });

describe('healthchecks: the dead-man switch', () => {
  it('pings /start when a run starts, the plain URL on success and /fail with the error text on failure', async () => {
    const cfg = config({ hc: { type: 'healthchecks', url: secretEnv('LB_TEST_HC_URL', `${receiver.base}/hc/${HC_UUID}`) } });
    const from = receiver.requests.length;

    expect(await sendNotifications(cfg, started)).toEqual([ok('hc', 'healthchecks', 'started')]);
    expect(await sendNotifications(cfg, succeeded)).toEqual([ok('hc', 'healthchecks', 'succeeded')]);
    expect(await sendNotifications(cfg, failed)).toEqual([ok('hc', 'healthchecks', 'failed')]);

    const pings = requestsTo('/hc/', from);
    // The run id pairs each start with its end in Healthchecks (rid), so overlapping runs are timed right.
    expect(pings.map((p) => `${p.method} ${p.path}`)).toEqual([
      `POST /hc/${HC_UUID}/start?rid=${RUN_ID}`,
      `POST /hc/${HC_UUID}?rid=${RUN_ID}`,
      `POST /hc/${HC_UUID}/fail?rid=${RUN_ID}`,
    ]);
    const fail = pings[2]!;
    expect(fail.body).toContain(ERROR);
    expect(fail.body.split('\n')[0]).toBe('[lifeboat] backup of plan app FAILED (AuthFailed) at app:appdb');
    expect(fail.body).toContain(`run:          ${LINK}`);
  });

  it('a failure body is at most 10 KB and ends with the end of the error (the cause)', async () => {
    const cfg = config({ hc: { type: 'healthchecks', url: secretEnv('LB_TEST_HC_URL2', `${receiver.base}/hc/${HC_UUID}`) } });
    const from = receiver.requests.length;
    const long = `${'rsync: some noise line\n'.repeat(2000)}the real cause: No space left on device (28)`;
    expect(await sendNotifications(cfg, { ...failed, error: long })).toEqual([ok('hc', 'healthchecks', 'failed')]);
    const [fail] = requestsTo('/hc/', from);
    expect(Buffer.byteLength(fail!.body)).toBeLessThanOrEqual(10 * 1024);
    expect(fail!.body).toMatch(/the real cause: No space left on device \(28\)$/);
  });
});

describe('webhook and ntfy', () => {
  const targets = () => ({
    hook: {
      type: 'webhook',
      url: secretEnv('LB_TEST_HOOK_URL', `${receiver.base}/hook/${HOOK_TOKEN}`),
      headers: { 'X-Lifeboat-Secret': secretFile('hook-header', HEADER_SECRET) },
      events: ['succeeded', 'failed'],
    },
    phone: {
      type: 'ntfy',
      url: secretFile('ntfy-url', `${receiver.base}/ntfy/${NTFY_TOPIC}`),
      token: secretEnv('LB_TEST_NTFY_TOKEN', NTFY_TOKEN),
      events: ['succeeded', 'failed'],
    },
  });

  it('a success: the JSON body and the ntfy text carry plan, snapshot, status, size, duration and the link', async () => {
    const from = receiver.requests.length;
    expect(await sendNotifications(config(targets()), succeeded)).toEqual([ok('hook', 'webhook', 'succeeded'), ok('phone', 'ntfy', 'succeeded')]);

    const [hook] = requestsTo('/hook/', from);
    expect(hook!.method).toBe('POST');
    expect(hook!.headers['content-type']).toBe('application/json');
    expect(hook!.headers['x-lifeboat-secret']).toBe(HEADER_SECRET);
    const json = JSON.parse(hook!.body) as Record<string, unknown>;
    expect(json).toMatchObject({
      source: 'lifeboat',
      event: 'succeeded',
      plan: 'app',
      tier: 'daily',
      snapshot: 'app-20261122T031213',
      status: 'Completed',
      size_bytes: 48_213_772,
      size: '46.0 MiB',
      duration_ms: 192_400,
      duration: '3 min 12 s',
      link: LINK,
    });

    const [ntfy] = requestsTo('/ntfy/', from);
    expect(ntfy!.headers.title).toBe('[lifeboat] backup of plan app succeeded: app-20261122T031213');
    expect(ntfy!.headers.priority).toBe('default');
    expect(ntfy!.headers.tags).toBe('white_check_mark,lifeboat,app');
    expect(ntfy!.headers.click).toBe(LINK);
    expect(ntfy!.headers.authorization).toBe(`Bearer ${NTFY_TOKEN}`);
    for (const line of ['plan:     app', 'snapshot: app-20261122T031213', 'status:   Completed', 'size:     46.0 MiB stored, 173.0 MiB captured', 'duration: 3 min 12 s']) {
      expect(ntfy!.body).toContain(line);
    }
    if (process.env.LIFEBOAT_PRINT_NOTIFY_SAMPLES) console.log(`webhook:\n${JSON.stringify(json, null, 2)}\n\nntfy ${ntfy!.headers.title}:\n${ntfy!.body}`);
  });

  it('a failure: high priority, the failing step, the error type and the error', async () => {
    const from = receiver.requests.length;
    expect(await sendNotifications(config(targets()), failed)).toEqual([ok('hook', 'webhook', 'failed'), ok('phone', 'ntfy', 'failed')]);

    const json = JSON.parse(requestsTo('/hook/', from)[0]!.body) as Record<string, unknown>;
    expect(json).toMatchObject({ event: 'failed', status: 'Failed', failing_step: 'app:appdb', error_type: 'AuthFailed', error: ERROR, duration: '31 s' });

    const ntfy = requestsTo('/ntfy/', from)[0]!;
    expect(ntfy.headers.title).toBe('[lifeboat] backup of plan app FAILED (AuthFailed) at app:appdb');
    expect(ntfy.headers.priority).toBe('high');
    expect(ntfy.headers.tags).toBe('rotating_light,lifeboat,app');
    expect(ntfy.body).toContain('failing step: app:appdb');
    expect(ntfy.body).toContain('error type:   AuthFailed');
    expect(ntfy.body).toMatch(/\n\nerror:\ncapture app:appdb: pg_dump: error: .*password authentication failed/);
    if (process.env.LIFEBOAT_PRINT_NOTIFY_SAMPLES) console.log(`ntfy ${ntfy.headers.title}:\n${ntfy.body}`);
  });

  it('without temporal.uiUrl there is no link, and ntfy gets no Click header', async () => {
    const from = receiver.requests.length;
    await sendNotifications(config(targets(), null), failed);
    expect(JSON.parse(requestsTo('/hook/', from)[0]!.body)).not.toHaveProperty('link');
    expect(requestsTo('/ntfy/', from)[0]!.headers.click).toBeUndefined();
  });

  it('events a target did not choose are not sent to it', async () => {
    const from = receiver.requests.length;
    expect(await sendNotifications(config(targets()), started)).toEqual([]);
    expect(receiver.requests.length).toBe(from);
  });
});

describe('a delivery that fails is a result, never an exception, and names neither the URL nor a token', () => {
  /** Everything secret about a target: none of it may appear in an error. */
  const BASIC = Buffer.from('lifeboat:pa55-Word').toString('base64');
  const SECRET_PARTS = [HOOK_TOKEN, NTFY_TOPIC, NTFY_TOKEN, HEADER_SECRET, HC_UUID, '/hook/', '/ntfy/', '/hc/', '/broken/', 'token=', 'secret-query', 'pa55-Word', BASIC];
  const expectClean = (error: string | undefined) => {
    expect(error).toBeTruthy();
    for (const part of SECRET_PARTS) expect(error, `error names "${part}"`).not.toContain(part);
  };

  it('a receiver answering 500 (and echoing the path and token back) fails after 3 attempts', async () => {
    const from = receiver.requests.length;
    const results = await sendNotifications(
      config({
        hook: {
          type: 'webhook',
          url: secretEnv('LB_TEST_BROKEN_URL', `${receiver.base}/broken/${HOOK_TOKEN}?token=secret-query`),
          headers: { Authorization: secretFile('broken-auth', `Bearer ${NTFY_TOKEN}`) },
        },
        phone: { type: 'ntfy', url: secretEnv('LB_TEST_BROKEN_NTFY', `${receiver.base}/broken/ntfy/${NTFY_TOPIC}`), token: secretEnv('LB_TEST_NTFY_TOKEN2', NTFY_TOKEN) },
        hc: { type: 'healthchecks', url: secretEnv('LB_TEST_BROKEN_HC', `${receiver.base}/broken/hc/${HC_UUID}`) },
        // Credentials in the URL go as a Basic Authorization header (fetch refuses them in the URL).
        basic: { type: 'webhook', url: secretEnv('LB_TEST_BROKEN_BASIC', `${receiver.base.replace('//', '//lifeboat:pa55-Word@')}/broken/basic`) },
      }),
      failed,
      { backoffMs: 50 },
    );
    expect(results.map((r) => [r.target, r.ok])).toEqual([
      ['hook', false],
      ['phone', false],
      ['hc', false],
      ['basic', false],
    ]);
    for (const r of results) {
      expect(r.error).toMatch(/^HTTP 500 Internal Server Error: .*\[redacted\].* \(3 attempts\)$/);
      expectClean(r.error);
    }
    expect(requestsTo('/broken/', from)).toHaveLength(12);
    expect(requestsTo('/broken/basic', from)[0]!.headers.authorization).toBe(`Basic ${BASIC}`);
  });

  it('a 4xx is not retried', async () => {
    const from = receiver.requests.length;
    const [r] = await sendNotifications(config({ hook: { type: 'webhook', url: secretEnv('LB_TEST_GONE_URL', `${receiver.base}/gone/${HOOK_TOKEN}`) } }), failed);
    expect(r).toMatchObject({ ok: false, error: 'HTTP 404 Not Found' });
    expect(requestsTo('/gone/', from)).toHaveLength(1);
  });

  it('a port nobody listens on: connection refused', async () => {
    const url = `http://127.0.0.1:${deadPort}`;
    const results = await sendNotifications(
      config({
        hook: { type: 'webhook', url: secretEnv('LB_TEST_DEAD_URL', `${url}/hook/${HOOK_TOKEN}?token=secret-query`) },
        phone: { type: 'ntfy', url: secretEnv('LB_TEST_DEAD_NTFY', `${url}/ntfy/${NTFY_TOPIC}`), token: secretEnv('LB_TEST_NTFY_TOKEN3', NTFY_TOKEN) },
        hc: { type: 'healthchecks', url: secretEnv('LB_TEST_DEAD_HC', `${url}/hc/${HC_UUID}`) },
      }),
      failed,
      { backoffMs: 50 },
    );
    for (const r of results) {
      expect(r).toMatchObject({ ok: false, error: 'connection refused (ECONNREFUSED) (3 attempts)' });
      expectClean(r.error);
    }
  });

  it('a receiver that never answers: each attempt has its own timeout', async () => {
    const t0 = Date.now();
    const [r] = await sendNotifications(config({ hook: { type: 'webhook', url: secretEnv('LB_TEST_SLOW_URL', `${receiver.base}/slow/${HOOK_TOKEN}`) } }), failed, {
      timeoutMs: 300,
      attempts: 2,
      backoffMs: 10,
    });
    expect(r).toMatchObject({ ok: false, error: 'no answer within 0.3 s (2 attempts)' });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a secret that cannot be read names the reference, not a value', async () => {
    delete process.env.LB_TEST_UNSET;
    const [r] = await sendNotifications(config({ hook: { type: 'webhook', url: { env: 'LB_TEST_UNSET' } } }), failed);
    expect(r).toMatchObject({ ok: false, error: 'SecretUnavailable: notify.hook.url: environment variable LB_TEST_UNSET is not set on the worker' });
  });
});

describe('the reportEvent activity (a real activity Context, no server)', () => {
  const activityEnv = (logs: LogEntry[]) => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN', (entry) => logs.push(entry)) });

  it('returns every delivery, logs each failure on one line without its URL, and does not throw', async () => {
    const configPath = join(dir, 'report.yaml');
    writeFileSync(
      configPath,
      configYaml({
        hook: { type: 'webhook', url: secretEnv('LB_TEST_REPORT_URL', `${receiver.base}/hook/${HOOK_TOKEN}`) },
        dead: { type: 'webhook', url: secretEnv('LB_TEST_REPORT_DEAD', `http://127.0.0.1:${deadPort}/hook/${HOOK_TOKEN}`) },
      }),
    );
    const logs: LogEntry[] = [];
    const { reportEvent } = createNotifyActivities({ configPath });
    const results = await activityEnv(logs).run(reportEvent, failed);
    expect(results).toEqual([ok('hook', 'webhook', 'failed'), { target: 'dead', type: 'webhook', event: 'failed', ok: false, error: 'connection refused (ECONNREFUSED) (3 attempts)' }]);
    const warnings = logs.filter((l) => l.level === 'WARN').map((l) => l.message);
    expect(warnings).toEqual(['notify: webhook target dead failed for failed of plan app: connection refused (ECONNREFUSED) (3 attempts)']);
  });

  it('a config that cannot be loaded is one failed result, not an exception (the run outcome stands)', async () => {
    const logs: LogEntry[] = [];
    const { reportEvent } = createNotifyActivities({ configPath: join(dir, 'missing.yaml') });
    const results = await activityEnv(logs).run(reportEvent, failed);
    expect(results).toEqual([{ target: '*', type: 'report', event: 'failed', ok: false, error: expect.stringMatching(/^ConfigError: cannot read config .*missing\.yaml/) }]);
    expect(logs.filter((l) => l.level === 'WARN')).toHaveLength(1);
  });
});

describe('e-mail over a real SMTP server', () => {
  let tls: { ca: string; key: string; cert: string };
  const servers: SMTPServer[] = [];

  beforeAll(() => {
    tls = makeCertificates(dir);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  async function smtp(opts: SMTPServerOptions) {
    const mails: Array<{ raw: string; user?: string; secure: boolean }> = [];
    const logins: Array<{ user: string; password: string; secure: boolean }> = [];
    const server = new SMTPServer({
      logger: false,
      ...opts,
      onAuth(auth, session, cb) {
        logins.push({ user: auth.username ?? '', password: auth.password ?? '', secure: session.secure });
        if (auth.username === 'lifeboat' && auth.password === SMTP_PASSWORD) cb(null, { user: 'lifeboat' });
        else cb(new Error('Invalid username or password'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ raw: Buffer.concat(chunks).toString('utf8'), user: session.user as string | undefined, secure: session.secure });
          cb();
        });
      },
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.server.address() as AddressInfo).port, mails, logins };
  }

  const mailTarget = (port: number, extra: Record<string, unknown> = {}) => ({
    mail: {
      type: 'email',
      host: '127.0.0.1',
      port,
      user: 'lifeboat',
      password: secretFile('smtp-password', SMTP_PASSWORD),
      from: 'lifeboat@backup.example.com',
      to: ['ops@example.com', 'oncall@example.com'],
      ...extra,
    },
  });

  it('STARTTLS: logs in with the resolved password over TLS and sends the title as the subject', async () => {
    const server = await smtp({ key: tls.key, cert: tls.cert });
    const results = await sendNotifications(config(mailTarget(server.port)), failed, { email: { ca: tls.ca } });
    expect(results).toEqual([ok('mail', 'email', 'failed')]);
    expect(server.logins).toEqual([{ user: 'lifeboat', password: SMTP_PASSWORD, secure: true }]);
    expect(server.mails).toHaveLength(1);
    const mail = server.mails[0]!;
    expect(mail).toMatchObject({ user: 'lifeboat', secure: true });
    expect(header(mail.raw, 'Subject')).toBe('[lifeboat] backup of plan app FAILED (AuthFailed) at app:appdb');
    expect(header(mail.raw, 'To')).toBe('ops@example.com, oncall@example.com');
    const body = mailBody(mail.raw);
    expect(body).toContain('snapshot:     app-20261122T031213');
    expect(body).toContain('failing step: app:appdb');
    expect(body).toContain(`run:          ${LINK}`);
    expect(body).toContain('password authentication failed for user "app"');
  });

  it('implicit TLS (tls: tls)', async () => {
    const server = await smtp({ secure: true, key: tls.key, cert: tls.cert });
    const results = await sendNotifications(config(mailTarget(server.port, { tls: 'tls' })), succeeded, { email: { ca: tls.ca } });
    // `succeeded` is not in the default events: this target must ask for it.
    expect(results).toEqual([]);
    const asked = await sendNotifications(config(mailTarget(server.port, { tls: 'tls', events: ['succeeded'] })), succeeded, { email: { ca: tls.ca } });
    expect(asked).toEqual([ok('mail', 'email', 'succeeded')]);
    expect(header(server.mails[0]!.raw, 'Subject')).toBe('[lifeboat] backup of plan app succeeded: app-20261122T031213');
    expect(server.mails[0]!.secure).toBe(true);
  });

  it('tls: none talks plain SMTP (a relay on localhost) and never upgrades', async () => {
    const server = await smtp({ key: tls.key, cert: tls.cert, authOptional: true });
    const target = { mail: { type: 'email', host: '127.0.0.1', port: server.port, tls: 'none', from: 'lifeboat@backup.example.com', to: ['ops@example.com'] } };
    expect(await sendNotifications(config(target), failed)).toEqual([ok('mail', 'email', 'failed')]);
    expect(server.mails[0]!.secure).toBe(false);
  });

  it('STARTTLS to a server whose certificate the worker does not trust fails, and says why', async () => {
    const server = await smtp({ key: tls.key, cert: tls.cert });
    const [r] = await sendNotifications(config(mailTarget(server.port)), failed, { backoffMs: 10 });
    expect(r!.ok).toBe(false);
    expect(r!.error).toMatch(/certificate/i);
    expect(server.logins).toEqual([]);
    expect(server.mails).toEqual([]);
  });

  it('a wrong password: the login is refused once (not retried) and the error does not carry it', async () => {
    const server = await smtp({ key: tls.key, cert: tls.cert });
    const target = mailTarget(server.port, { password: secretFile('smtp-wrong', 'wrong-Password-77') });
    const [r] = await sendNotifications(config(target), failed, { email: { ca: tls.ca } });
    expect(r).toMatchObject({ ok: false });
    expect(r!.error).toMatch(/^SMTP EAUTH: Invalid login/);
    expect(r!.error).not.toContain('wrong-Password-77');
    expect(server.logins).toHaveLength(1);
  });
});

/** A loopback receiver: 200 for everything, 500 under /broken/ (echoing path and token back), 404 under /gone/, silence under /slow/. */
async function startReceiver(): Promise<{ base: string; requests: Received[]; close(): Promise<void> }> {
  const requests: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      requests.push({ method: req.method ?? '', path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (path.startsWith('/slow/')) return; // never answers
      if (path.startsWith('/broken/')) {
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`cannot handle ${path} (auth ${req.headers.authorization ?? '-'})`);
      } else if (path.startsWith('/gone/')) {
        res.writeHead(404).end();
      } else {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port that was free a moment ago, with nothing listening on it. */
async function unusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A private CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI. */
function makeCertificates(into: string): { ca: string; key: string; cert: string } {
  const p = (name: string) => join(into, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=lifeboat test CA');
  openssl('req', ...ec, '-keyout', p('smtp.key'), '-out', p('smtp.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(p('smtp.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', p('smtp.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('smtp.crt'), '-days', '2', '-extfile', p('smtp.ext'));
  return { ca: readFileSync(p('ca.crt'), 'utf8'), key: readFileSync(p('smtp.key'), 'utf8'), cert: readFileSync(p('smtp.crt'), 'utf8') };
}

/** A header of a raw message, unfolded. */
function header(raw: string, name: string): string | undefined {
  const head = raw.split('\r\n\r\n')[0]!.replace(/\r\n(?=[ \t])/g, '');
  return new RegExp(`^${name}: (.*)$`, 'mi').exec(head)?.[1];
}

/** The text body of a raw single-part message (quoted-printable decoded when nodemailer used it). */
function mailBody(raw: string): string {
  const body = raw.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  if (!/^Content-Transfer-Encoding: quoted-printable/im.test(raw)) return body.replace(/\r\n/g, '\n');
  return Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1')
    .toString('utf8')
    .replace(/\r\n/g, '\n');
}
