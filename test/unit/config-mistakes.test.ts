// One test per class of configuration mistake: each is caught by `config validate`, as one line naming the
// field path, instead of failing (or worse, running) at 2 a.m.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { MAX_CONFIG_BYTES, loadConfig, parseConfig } from '../../src/config/load';
import { checkSecrets } from '../../src/config/secrets';
import { LifeboatError } from '../../src/shared/errors';

const base = () => ({
  backupRoot: '/srv/lifeboat',
  storages: { disk: { type: 'local', path: '/mnt/backups' } } as Record<string, unknown>,
  plans: {
    web: {
      storages: ['disk'],
      sources: [{ name: 'app', host: 'local', artifacts: [{ name: 'site', type: 'files', paths: ['/srv/site'] }] }] as Record<string, unknown>[],
    } as Record<string, unknown>,
  },
});

/** The one-line problems of a config, or [] when it is valid. */
function problems(cfg: unknown): string[] {
  try {
    parseConfig(typeof cfg === 'string' ? cfg : stringify(cfg));
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('ConfigError');
    const lines = (err as Error).message.split('\n');
    return lines.length > 1 ? lines.slice(1).map((l) => l.trim()) : lines;
  }
}

const withSchedule = (schedule: Record<string, unknown>) => {
  const c = base();
  c.plans.web!.schedule = schedule;
  return c;
};

describe('config validate catches', () => {
  it('the base config is valid (so each case below fails for its own reason)', () => {
    expect(problems(base())).toEqual([]);
  });

  it.each([
    ['61 2 * * *', '0-59'],
    ['0 25 * * *', '0-23'],
    ['0 0 1 13 *', '1-12'],
    ['0 3 * * mnday', 'mnd'],
    ['0 3 32 * *', '1-31'],
    ['every day', '5-field'],
  ])('cron out of range or misspelt: %s', (cron, hint) => {
    const p = problems(withSchedule({ daily: cron }));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^plans\.web\.schedule\.daily: /);
    expect(p[0]).toContain(hint);
  });

  it('valid crons with names, ranges and steps pass', () => {
    expect(problems(withSchedule({ daily: '30 2 * * *', weekly: '0 3 * * sun', monthly: '0 4 1-7 * mon', verify: '*/15 1-5 * jan-jun *' }))).toEqual([]);
  });

  it('unknown time zones in schedule and retention', () => {
    expect(problems(withSchedule({ timezone: 'Europe/Berlinn', daily: '0 2 * * *' }))).toEqual([expect.stringMatching(/^plans\.web\.schedule\.timezone: unknown time zone "Europe\/Berlinn"/)]);
    const c = base();
    c.storages.disk = { type: 'local', path: '/mnt/backups', retention: { daily: 7, timezone: 'Mars/Olympus' } };
    expect(problems(c)).toEqual([expect.stringMatching(/^storages\.disk\.retention\.timezone: unknown time zone/)]);
  });

  it('an S3 endpoint that is not an http(s) URL, a prefix with "..", a bad bucket name', () => {
    const c = base();
    c.storages.s3 = { type: 's3', endpoint: 'minio:9000', bucket: 'backups/daily', prefix: 'lifeboat/../etc', accessKeyId: { env: 'K' }, secretAccessKey: { env: 'S' } };
    const p = problems(c);
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^storages\.s3\.endpoint: an http:\/\/ or https:\/\/ URL/),
        expect.stringMatching(/^storages\.s3\.prefix: /),
        expect.stringMatching(/^storages\.s3\.bucket: /),
      ]),
    );
    c.storages.s3 = { type: 's3', endpoint: 'https://s3.example.com', bucket: 'backups', prefix: '/abs', accessKeyId: { env: 'K' }, secretAccessKey: { env: 'S' } };
    expect(problems(c)).toEqual([expect.stringMatching(/^storages\.s3\.prefix: /)]);
  });

  it.each([0, 65536, 70000, -1])('port %i outside 1–65535 (SSH source and database)', (port) => {
    const c = base();
    c.plans.web!.sources = [{ name: 'db', host: 'db.internal', identityFile: '/k', knownHosts: '/h', port, artifacts: [{ name: 'pg', type: 'postgres', database: 'app', port }] }];
    const p = problems(c);
    expect(p).toEqual(expect.arrayContaining([expect.stringMatching(/^plans\.web\.sources\.0\.port: a port is 1–65535/), expect.stringMatching(/^plans\.web\.sources\.0\.artifacts\.0\.port: a port is 1–65535/)]));
  });

  it('a malformed Temporal address or namespace', () => {
    for (const address of ['localhost', 'http://127.0.0.1:7233', '127.0.0.1:99999', 'a b:7233']) {
      expect(problems({ ...base(), temporal: { address } }), address).toEqual([expect.stringMatching(/^temporal\.address: host:port/)]);
    }
    expect(problems({ ...base(), temporal: { address: '[::1]:7233' } })).toEqual([]);
    expect(problems({ ...base(), temporal: { namespace: 'my namespace' } })).toEqual([expect.stringMatching(/^temporal\.namespace: /)]);
  });

  it('host: local combined with SSH options', () => {
    const c = base();
    c.plans.web!.sources = [{ name: 'app', host: 'local', port: 2222, user: 'backup', artifacts: [{ name: 'site', type: 'files', paths: ['/srv'] }] }];
    expect(problems(c)).toEqual([expect.stringMatching(/^plans\.web\.sources\.0\.port: host: local runs on the backup host without SSH/), expect.stringMatching(/^plans\.web\.sources\.0\.user: /)]);
  });

  it('a stall timeout or plan timeout that is not a duration', () => {
    const c = base();
    c.plans.web!.timeout = '1 day';
    (c.plans.web!.sources as Array<{ artifacts: Record<string, unknown>[] }>)[0]!.artifacts[0]!.stallTimeout = 'soon';
    expect(problems(c)).toEqual([expect.stringMatching(/^plans\.web\.sources\.0\.artifacts\.0\.stallTimeout: a duration/), expect.stringMatching(/^plans\.web\.timeout: a duration/)]);
  });

  it('plan metadata too large to travel with every step', () => {
    const c = base();
    c.plans.web!.metadata = { notes: 'x'.repeat(20_000) };
    expect(problems(c)).toEqual([expect.stringMatching(/^plans\.web\.metadata: at most 16 KiB/)]);
  });

  it('input that is not YAML, not a mapping, or empty', () => {
    expect(problems('backupRoot: [unclosed\nplans: {')[0]).toMatch(/YAML syntax error: .* at line \d+, column \d+$/);
    expect(problems('just some words')[0]).toMatch(/\(top level\): expected a mapping .* got a string/);
    expect(problems('- a\n- b\n')[0]).toMatch(/got a list/);
    expect(problems('')).toEqual(expect.arrayContaining([expect.stringMatching(/^backupRoot: /), expect.stringMatching(/^plans: /)]));
    expect(problems('\0\x01\x02binary')[0]).toMatch(/not a YAML text file/);
  });

  it('a YAML alias bomb is refused quickly, not expanded', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const started = Date.now();
    const p = problems(levels.join('\n'));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(p[0]).toMatch(/alias/i);
  });

  it('a file larger than a config can be (50 MB) is refused before it is read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-cfg-'));
    const file = join(dir, 'big.yaml');
    writeFileSync(file, `backupRoot: /x\nmetadata: "${'x'.repeat(50 * 1024 * 1024)}"\n`);
    const err = await loadConfig(file).then(
      () => undefined,
      (e: unknown) => e as LifeboatError,
    );
    expect(err?.code).toBe('ConfigError');
    expect(err?.message).toContain(`larger than a config can be (${MAX_CONFIG_BYTES} bytes)`);
  });

  it('--check-secrets: an unset env variable, a missing file, a file readable by others; a private file passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-sec-'));
    const open = join(dir, 'open');
    const priv = join(dir, 'private');
    writeFileSync(open, 's3cret');
    chmodSync(open, 0o644);
    writeFileSync(priv, 's3cret');
    chmodSync(priv, 0o600);
    delete process.env.LIFEBOAT_TEST_UNSET;
    const c = base();
    c.storages.s3 = { type: 's3', endpoint: 'https://s3.example.com', bucket: 'backups', accessKeyId: { env: 'LIFEBOAT_TEST_UNSET' }, secretAccessKey: { file: join(dir, 'missing') } };
    c.storages.s4 = { type: 's3', endpoint: 'https://s3.example.com', bucket: 'backups', accessKeyId: { file: open }, secretAccessKey: { file: priv } };
    const p = await checkSecrets(parseConfig(stringify(c)));
    expect(p).toEqual([
      'storages.s3.accessKeyId: environment variable LIFEBOAT_TEST_UNSET is not set',
      `storages.s3.secretAccessKey: cannot read ${join(dir, 'missing')}: ENOENT`,
      `storages.s4.accessKeyId: ${open} is readable by others (mode 644); chmod 600 it`,
    ]);
  });
});

describe('notification and Temporal connection mistakes', () => {
  const mail = (extra: Record<string, unknown>) => ({ type: 'email', host: 'smtp.example.com', from: 'a@b.c', to: ['o@b.c'], ...extra });

  it('a plan names a notify target that does not exist', () => {
    const c = { ...base(), notify: { ops: { type: 'ntfy', url: { env: 'NTFY_URL' } } } };
    c.plans.web!.notify = ['ops', 'pager'];
    expect(problems(c)).toEqual(['plans.web.notify.1: unknown notify target "pager" (defined: ops)']);
  });

  it('a notify URL written as a value instead of a secret reference', () => {
    expect(problems({ ...base(), notify: { ops: { type: 'webhook', url: 'https://hooks.example.com/T0K3N' } } })[0]).toMatch(/^notify\.ops\.url: a secret is a reference/);
  });

  it('an SMTP password over a plain connection to another host', () => {
    expect(problems({ ...base(), notify: { m: mail({ tls: 'none', user: 'u', password: { env: 'P' } }) } })).toEqual([
      'notify.m.tls: tls: none would send the SMTP password in clear text; use starttls or tls (none is for a relay on loopback)',
    ]);
    expect(problems({ ...base(), notify: { m: mail({ host: '127.0.0.1', tls: 'none', user: 'u', password: { env: 'P' } }) } })).toEqual([]);
    expect(problems({ ...base(), notify: { m: mail({ tls: 'starttls', user: 'u', password: { env: 'P' } }) } })).toEqual([]);
  });

  it('an unknown event, a bad maxAge, a client certificate without its key', () => {
    expect(problems({ ...base(), notify: { ops: { type: 'ntfy', url: { env: 'U' }, events: ['exploded'] } } })[0]).toMatch(/^notify\.ops\.events\.0: /);
    const c = base();
    c.plans.web!.maxAge = '26 hours';
    expect(problems(c)).toEqual(['plans.web.maxAge: a duration like 30s, 10m, 6h or 2d']);
    expect(problems({ ...base(), temporal: { tls: { cert: '/etc/lifeboat/c.pem' } } })).toEqual(['temporal.tls: cert and key come together (a client certificate and its private key)']);
  });
});
