import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, getPlan, formatIssues } from '../../src/config/load';
import { resolveSecret } from '../../src/config/secrets';
import { LifeboatError } from '../../src/shared/errors';

/** A complete, valid config that leaves every defaultable field out. */
const VALID = `
backupRoot: /srv/lifeboat
ssh:
  identityFile: /etc/lifeboat/id_ed25519
  knownHosts: /etc/lifeboat/known_hosts
storages:
  offsite:
    type: s3
    endpoint: https://s3.example.com
    bucket: backups
    accessKeyId: { env: LIFEBOAT_S3_KEY }
    secretAccessKey: { file: /etc/lifeboat/s3-secret }
  disk:
    type: local
    path: /mnt/usb/lifeboat
plans:
  nightly:
    storages: [offsite, disk]
    sources:
      - name: app
        host: app.internal
        artifacts:
          - name: appdb
            type: postgres
            database: app
            password: { env: PGPASSWORD_APP }
          - name: uploads
            type: files
            paths: [/var/lib/app/uploads]
      - name: backup-host
        host: local
        artifacts:
          - name: etc
            type: files
            paths: [/etc/lifeboat]
            required: false
`;

/** Minimal config with one local source and placeholders for quick variations. */
function minimal(opts: { backupRoot?: string; storageRef?: string; source?: string; extraTop?: string; secret?: string } = {}): string {
  const source =
    opts.source ??
    `      - name: here
        host: local
        artifacts:
          - { name: db, type: postgres, database: app }`;
  return `backupRoot: ${opts.backupRoot ?? '/srv/lifeboat'}
storages:
  s3:
    type: s3
    bucket: b
    accessKeyId: ${opts.secret ?? '{ env: KEY_ID }'}
    secretAccessKey: { env: SECRET_KEY }
plans:
  daily:
    storages: [${opts.storageRef ?? 's3'}]
    sources:
${source}
${opts.extraTop ?? ''}`;
}

/** Runs fn, expects a LifeboatError, returns it. */
function catchError(fn: () => unknown): LifeboatError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LifeboatError);
    return err as LifeboatError;
  }
  throw new Error('expected a LifeboatError, nothing was thrown');
}

function configError(text: string): string {
  const err = catchError(() => parseConfig(text, 'test.yaml'));
  expect(err.code).toBe('ConfigError');
  expect(err.permanent).toBe(true);
  expect(err.message).toMatch(/^test\.yaml/);
  return err.message;
}

describe('parseConfig: valid config', () => {
  it('parses a full config and applies defaults', () => {
    const cfg = parseConfig(VALID);
    expect(cfg.version).toBe(1);
    expect(cfg.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'lifeboat' });
    expect(cfg.backupRoot).toBe('/srv/lifeboat');
    expect(cfg.denyList).toEqual([]);

    const s3 = cfg.storages.offsite;
    expect(s3).toMatchObject({
      type: 's3',
      bucket: 'backups',
      region: 'us-east-1',
      prefix: '',
      forcePathStyle: true,
      partSizeMiB: 16,
      queueSize: 4,
      accessKeyId: { env: 'LIFEBOAT_S3_KEY' },
      secretAccessKey: { file: '/etc/lifeboat/s3-secret' },
    });
    expect(cfg.storages.disk).toEqual({ type: 'local', path: '/mnt/usb/lifeboat' });

    const plan = cfg.plans.nightly!;
    expect(plan.archive).toEqual({ format: 'tar.zst' });
    expect(plan.overheadRatio).toBe(1.5);
    expect(plan.parallelism).toBe(2);
    expect(plan.metadata).toEqual({});
    expect(plan.prefix).toBeUndefined();

    const [app, local] = plan.sources;
    expect(app).toMatchObject({ name: 'app', host: 'app.internal' });
    // SSH port and user default at connection time (22, root), so `host: local` can refuse them when set.
    expect([app!.port, app!.user]).toEqual([undefined, undefined]);
    expect(local).toMatchObject({ name: 'backup-host', host: 'local' });

    const pg = app!.artifacts[0]!;
    expect(pg.type).toBe('postgres');
    if (pg.type !== 'postgres') throw new Error('unreachable');
    expect(pg.required).toBe(true);
    expect(pg.user).toBe('postgres');
    expect(pg.format).toBe('plain');
    expect(pg.host).toBeUndefined();
    expect(pg.port).toBeUndefined();
    expect(pg.password).toEqual({ env: 'PGPASSWORD_APP' });

    const files = app!.artifacts[1]!;
    expect(files).toEqual({ name: 'uploads', type: 'files', paths: ['/var/lib/app/uploads'], optionalPaths: [], exclude: [], required: true, stallTimeout: '10m', media: false });
    expect(local!.artifacts[0]!.required).toBe(false);
  });

  it('keeps explicit values over defaults', () => {
    const cfg = parseConfig(
      VALID.replace('backupRoot: /srv/lifeboat', 'backupRoot: /srv/lifeboat\ntemporal: { taskQueue: other }').replace(
        '    storages: [offsite, disk]',
        '    storages: [offsite, disk]\n    archive: { format: tar.gz, level: 9 }\n    overheadRatio: 2\n    parallelism: 4',
      ),
    );
    expect(cfg.temporal.taskQueue).toBe('other');
    expect(cfg.temporal.address).toBe('127.0.0.1:7233');
    expect(cfg.plans.nightly!.archive).toEqual({ format: 'tar.gz', level: 9 });
    expect(cfg.plans.nightly!.overheadRatio).toBe(2);
    expect(cfg.plans.nightly!.parallelism).toBe(4);
  });

  it('accepts a `host: local` source with no identityFile/knownHosts anywhere', () => {
    const cfg = parseConfig(minimal());
    expect(cfg.ssh).toEqual({});
    expect(cfg.plans.daily!.sources[0]!.host).toBe('local');
  });

  it('accepts an SSH source whose identityFile/knownHosts are set on the source itself', () => {
    const cfg = parseConfig(
      minimal({
        source: `      - name: remote
        host: db.example
        identityFile: /k/id
        knownHosts: /k/known_hosts
        artifacts:
          - { name: db, type: postgres, database: app }`,
      }),
    );
    expect(cfg.plans.daily!.sources[0]).toMatchObject({ identityFile: '/k/id', knownHosts: '/k/known_hosts' });
  });
});

describe('parseConfig: rejected configs name the field and the problem', () => {
  it('relative backupRoot', () => {
    const msg = configError(minimal({ backupRoot: 'srv/lifeboat' }));
    expect(msg).toContain('backupRoot: must be an absolute path');
  });

  it('a plan referencing an unknown storage (and lists the defined ones)', () => {
    const msg = configError(minimal({ storageRef: 's3, tape' }));
    expect(msg).toContain('plans.daily.storages.1: unknown storage "tape" (defined: s3)');
    expect(msg).not.toContain('storages.0');
  });

  it('duplicate artifact names across two sources of one plan', () => {
    const msg = configError(
      minimal({
        source: `      - name: one
        host: local
        artifacts:
          - { name: db, type: postgres, database: a }
      - name: two
        host: local
        artifacts:
          - { name: db, type: files, paths: [/srv] }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.1.artifacts.0.name: duplicate artifact name "db" in plan daily');
  });

  it('two opensearch artifacts on one cluster and repository (their snapshots would share a name); another repository or host is fine', () => {
    const msg = configError(
      minimal({
        source: `      - name: one
        host: local
        artifacts:
          - { name: logs, type: opensearch, repositoryPath: /snap }
          - { name: search, type: opensearch, repositoryPath: /snap }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.0.artifacts.1.repository: opensearch artifact "search" uses the same cluster (http://127.0.0.1:9200 on local) and snapshot repository "lifeboat" as "logs"');
    for (const source of [
      `      - name: one
        host: local
        artifacts:
          - { name: logs, type: opensearch, repositoryPath: /snap }
          - { name: search, type: opensearch, repositoryPath: /snap, repository: other }`,
      `      - name: one
        host: 10.0.0.5
        identityFile: /k
        knownHosts: /kh
        artifacts:
          - { name: logs, type: opensearch, repositoryPath: /snap }
      - name: two
        host: 10.0.0.6
        identityFile: /k
        knownHosts: /kh
        artifacts:
          - { name: search, type: opensearch, repositoryPath: /snap }`,
    ]) expect(() => parseConfig(minimal({ source }))).not.toThrow();
  });

  it('the same artifact name in two different plans is fine', () => {
    const text = minimal().replace(
      'plans:\n',
      `plans:
  weekly:
    storages: [s3]
    sources:
      - name: here
        host: local
        artifacts:
          - { name: db, type: postgres, database: app }
`,
    );
    const cfg = parseConfig(text);
    expect(Object.keys(cfg.plans).sort()).toEqual(['daily', 'weekly']);
  });

  it('an SSH source without identityFile and knownHosts (neither on the source nor under ssh:)', () => {
    const msg = configError(
      minimal({
        source: `      - name: remote
        host: db.example
        artifacts:
          - { name: db, type: postgres, database: app }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.0.identityFile: an SSH source needs identityFile');
    expect(msg).toContain('plans.daily.sources.0.knownHosts: an SSH source needs a pinned knownHosts file');
  });

  it('an SSH source with identityFile but no knownHosts only reports knownHosts', () => {
    const msg = configError(
      minimal({
        source: `      - name: remote
        host: db.example
        identityFile: /k/id
        artifacts:
          - { name: db, type: postgres, database: app }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.0.knownHosts');
    expect(msg).not.toContain('sources.0.identityFile');
  });

  it('a secret given as a plain string is rejected, and the value is not echoed', () => {
    const msg = configError(minimal({ secret: 'AKIAPLAINTEXTSECRET' }));
    expect(msg).toContain('storages.s3.accessKeyId');
    expect(msg).not.toContain('AKIAPLAINTEXTSECRET');
  });

  it('a plain-string secret: the message says a secret must be { env } or { file }', () => {
    const msg = configError(minimal({ secret: 'AKIAPLAINTEXTSECRET' }));
    expect(msg).toMatch(/storages\.s3\.accessKeyId: .*env.*file/);
    expect(msg).toContain('storages.s3.accessKeyId: a secret is a reference: { env: VAR_NAME } or { file: /absolute/path }, never the value itself');
    expect(msg).not.toContain('AKIAPLAINTEXTSECRET');
  });

  it('a secret file reference must be absolute', () => {
    const msg = configError(minimal({ secret: '{ file: secrets/key }' }));
    expect(msg).toContain('storages.s3.accessKeyId.file: must be an absolute path');
  });

  it('unknown keys at the top level (strict)', () => {
    const msg = configError(minimal({ extraTop: 'backuproot: /typo\n' }));
    expect(msg).toContain('(top level): Unrecognized key: "backuproot"');
  });

  it('unknown keys in a nested object (strict)', () => {
    const msg = configError(
      minimal({
        source: `      - name: here
        host: local
        identityfile: /k/id
        artifacts:
          - { name: db, type: postgres, database: app, pasword: { env: X } }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.0: Unrecognized key: "identityfile"');
    expect(msg).toContain('plans.daily.sources.0.artifacts.0: Unrecognized key: "pasword"');
  });

  it('YAML syntax error', () => {
    const msg = configError('backupRoot: /srv\nplans: [unclosed\n');
    expect(msg).toContain('test.yaml: YAML syntax error');
    expect(msg).toMatch(/line \d+/);
  });

  it('duplicate YAML keys', () => {
    const msg = configError(minimal() + 'backupRoot: /other\n');
    expect(msg).toContain('test.yaml: YAML syntax error');
    expect(msg).toContain('Map keys must be unique');
  });

  it('an empty file reports the required fields', () => {
    const msg = configError('');
    expect(msg).toContain('backupRoot:');
    expect(msg).toContain('storages:');
    expect(msg).toContain('plans:');
  });

  it('several problems are reported together, one per line', () => {
    const msg = configError(minimal({ backupRoot: 'rel', storageRef: 'nope' }));
    const lines = msg.split('\n');
    expect(lines[0]).toBe('test.yaml is invalid:');
    expect(lines).toContain('  backupRoot: must be an absolute path');
    expect(lines).toContain('  plans.daily.storages.0: unknown storage "nope" (defined: s3)');
  });

  it('a plan referencing storage "toString" (an Object.prototype member) is rejected', () => {
    const msg = configError(minimal({ storageRef: 'toString' }));
    expect(msg).toContain('plans.daily.storages.0: unknown storage "toString" (defined: s3)');
  });

  it('a postgres artifact with both runAs and password is rejected', () => {
    const msg = configError(
      minimal({
        source: `      - name: here
        host: local
        artifacts:
          - { name: db, type: postgres, database: app, runAs: postgres, password: { env: PGPASS } }`,
      }),
    );
    expect(msg).toContain('plans.daily.sources.0.artifacts.0.runAs: use either runAs (peer authentication) or password, not both');
  });
});

describe('formatIssues', () => {
  it('joins paths with dots and labels path-less issues as top level', () => {
    const text = formatIssues('f.yaml', [
      { code: 'custom', path: ['plans', 'p', 'sources', 0, 'name'], message: 'bad', input: undefined },
      { code: 'custom', path: [], message: 'worse', input: undefined },
    ]);
    expect(text).toBe('f.yaml is invalid:\n  plans.p.sources.0.name: bad\n  (top level): worse');
  });
});

describe('getPlan', () => {
  const cfg = parseConfig(VALID.replace('plans:\n', 'plans:\n  weekly:\n    storages: [disk]\n    sources:\n      - { name: h, host: local, artifacts: [{ name: x, type: files, paths: [/x] }] }\n'));

  it('returns a defined plan', () => {
    expect(getPlan(cfg, 'nightly').storages).toEqual(['offsite', 'disk']);
  });

  it('an unknown plan is a ConfigError naming the defined plans', () => {
    const err = catchError(() => getPlan(cfg, 'hourly'));
    expect(err.code).toBe('ConfigError');
    expect(err.message).toBe('unknown plan "hourly" (defined: weekly, nightly)');
  });

  it('an Object.prototype member name ("constructor") is an unknown plan', () => {
    const err = catchError(() => getPlan(cfg, 'constructor'));
    expect(err.code).toBe('ConfigError');
    expect(err.message).toBe('unknown plan "constructor" (defined: weekly, nightly)');
  });
});

describe('resolveSecret', () => {
  let dir: string;
  const ENV = 'LIFEBOAT_UNIT_TEST_SECRET';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-secret-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    delete process.env[ENV];
  });

  it('reads a set environment variable', async () => {
    process.env[ENV] = 's3cr3t value';
    await expect(resolveSecret({ env: ENV }, 'test secret')).resolves.toBe('s3cr3t value');
  });

  it('an unset environment variable is SecretUnavailable naming the variable', async () => {
    const err = await resolveSecret({ env: ENV }, 'password of x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('SecretUnavailable');
    expect((err as LifeboatError).permanent).toBe(true);
    expect((err as LifeboatError).message).toBe(`password of x: environment variable ${ENV} is not set on the worker`);
  });

  it('an empty environment variable counts as unset', async () => {
    process.env[ENV] = '';
    await expect(resolveSecret({ env: ENV }, 'x')).rejects.toMatchObject({ code: 'SecretUnavailable' });
  });

  it('reads a file and strips one trailing newline (LF or CRLF)', async () => {
    const lf = join(dir, 'lf');
    const crlf = join(dir, 'crlf');
    const none = join(dir, 'none');
    writeFileSync(lf, 'pa:ss\\word\n');
    writeFileSync(crlf, 'pa:ss\\word\r\n');
    writeFileSync(none, ' keep spaces ');
    await expect(resolveSecret({ file: lf }, 'x')).resolves.toBe('pa:ss\\word');
    await expect(resolveSecret({ file: crlf }, 'x')).resolves.toBe('pa:ss\\word');
    await expect(resolveSecret({ file: none }, 'x')).resolves.toBe(' keep spaces ');
  });

  it('a missing file is SecretUnavailable naming the path', async () => {
    const path = join(dir, 'does-not-exist');
    const err = (await resolveSecret({ file: path }, 'secretAccessKey of storage s3').catch((e: unknown) => e)) as LifeboatError;
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err.code).toBe('SecretUnavailable');
    expect(err.message).toContain('secretAccessKey of storage s3');
    expect(err.message).toContain(path);
  });

  it('an unreadable secret file (a directory holding the secret) never leaks the secret into the message', async () => {
    const secretDir = join(dir, 'as-dir');
    mkdirSync(secretDir);
    writeFileSync(join(secretDir, 'inner'), 'TOP-SECRET-VALUE');
    process.env[ENV] = 'TOP-SECRET-VALUE';
    const err = (await resolveSecret({ file: secretDir }, 'x').catch((e: unknown) => e)) as LifeboatError;
    expect(err.code).toBe('SecretUnavailable');
    expect(err.message).toContain(secretDir);
    expect(err.message).not.toContain('TOP-SECRET-VALUE');
  });
});
