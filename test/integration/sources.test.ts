// Every artifact type in one backup run over SSH, on real Temporal, PostgreSQL, MariaDB, Redis, sqlite3, sshd and
// rsync; OpenSearch is a STAND-IN (test/support/opensearch-standin.ts), since no OpenSearch server runs here.
// Each captured copy is checked the way a restore needs it: dumps load, integrity checks pass, keys come back.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { freePort, startSshHost, waitForPort, type SshHost } from '../../scripts/lib/services';
import type { BackupResult } from '../../src/shared/types';
import { startOpensearchStandin, type OpensearchStandin } from '../support/opensearch-standin';
import { historyText, psql, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('sources');
const name = uniqueName('lb_all').replace(/-/g, '_');
const taskQueue = uniqueName('sources-it');
// Each secret needs escaping somewhere, and carries a plain token to search the (JSON-escaped) history for.
const SECRETS = { mysql: 'Qm7mysqlTok"\\pw:1', redis: 'Qm7redisTok-$(pw)`x', opensearch: 'Qm7osTok"\\2' };
const TOKENS = ['Qm7mysqlTok', 'Qm7redisTok', 'Qm7osTok'];
const mysqlUser = `${name}_u`.slice(0, 32);
const redisPort = await freePort();
const redisDir = join(root, 'redis');
let host: SshHost;
let t: TemporalFixture;
let search: OpensearchStandin;
let writer: ResultPromise | undefined;
let result: BackupResult;
let meta: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- metadata.yml as parsed YAML

const mariadb = (sql: string, db?: string) => execa('mariadb', ['-u', 'root', '--batch', '--skip-column-names', ...(db ? [db] : []), '-e', sql]).then((r) => r.stdout.trim());
const redisCli = (port: number, ...args: string[]) => execa('redis-cli', ['-p', String(port), '--no-auth-warning', ...args], { env: { REDISCLI_AUTH: SECRETS.redis } }).then((r) => r.stdout.trim());

beforeAll(async () => {
  host = await startSshHost({ name: 'apps', baseDir: root, identityFile: join(root, 'id_ed25519'), knownHostsFile: join(root, 'known_hosts') });
  const data = host.dataDir;
  // PostgreSQL: a table, a role only pg_dumpall --globals-only captures.
  await psql(`CREATE DATABASE ${name}`);
  await psql(`CREATE TABLE meals (id int PRIMARY KEY, name text); INSERT INTO meals SELECT g, 'meal ' || g FROM generate_series(1, 120) g; CREATE TABLE "Empty Table" (x int);`, name);
  await psql(`CREATE ROLE ${name}_reader NOLOGIN`);
  // MariaDB: a user whose password needs escaping in an option file.
  await mariadb(`CREATE DATABASE ${name}; CREATE USER '${mysqlUser}'@'localhost' IDENTIFIED BY '${SECRETS.mysql.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'; GRANT ALL ON ${name}.* TO '${mysqlUser}'@'localhost';`);
  await mariadb(`CREATE TABLE wiki (id INT PRIMARY KEY, body TEXT); INSERT INTO wiki VALUES (1,'first'),(2,'sec\\'ond'),(3,NULL);`, name);
  // SQLite under continuous writes during the whole backup (rollback journal: the hard case for .backup).
  const sqlitePath = join(data, 'lldap/users.db');
  await mkdir(join(data, 'lldap'), { recursive: true });
  await execa('sqlite3', [sqlitePath, 'CREATE TABLE users(id INTEGER PRIMARY KEY, v BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000) INSERT INTO users(v) SELECT randomblob(500) FROM c;']);
  writer = execa('bash', ['-c', `while :; do sqlite3 "$1" ".timeout 5000" "INSERT INTO users(v) VALUES (randomblob(500));" || exit 1; sleep 0.01; done`, 'writer', sqlitePath], { reject: false });
  // Redis with persistence, AOF and a password.
  await mkdir(redisDir, { recursive: true });
  await execa('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--daemonize', 'yes', '--dir', redisDir, '--save', '3600 1', '--appendonly', 'yes', '--requirepass', SECRETS.redis, '--logfile', join(redisDir, 'log')]);
  await waitForPort(redisPort, 10_000);
  for (let i = 0; i < 50; i++) await redisCli(redisPort, 'SET', `recipe:${i}`, `value ${i}`);
  // OpenSearch stand-in with basic auth.
  const repo = join(data, 'opensearch-repo');
  search = await startOpensearchStandin({ pathRepo: [repo], auth: { username: 'admin', password: SECRETS.opensearch } });
  // Files: an optional workspace that is absent, a cache excluded per source, a journal stand-in for `command`.
  await mkdir(join(data, 'jellyfin/cache'), { recursive: true });
  await writeFile(join(data, 'jellyfin/library.db'), 'library');
  await writeFile(join(data, 'jellyfin/cache/transcode.cache'), Buffer.alloc(4096));
  await writeFile(join(data, 'journal.log'), 'Nov 22 fastdeploy[1]: started\n');
  await writeFile(join(data, 'VERSION'), 'lldap 0.6.1\n');
  const secretFile = async (n: string, v: string) => {
    await writeFile(join(root, n), v, { mode: 0o600 });
    return { file: join(root, n) };
  };
  const configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile: join(root, 'id_ed25519'), knownHosts: join(root, 'known_hosts') },
    storages: { local: { type: 'local', path: join(root, 'storage') } },
    plans: {
      everything: {
        storages: ['local'],
        parallelism: 2,
        sources: [
          {
            name: 'apps',
            host: '127.0.0.1',
            port: host.port,
            appVersion: ['cat', join(data, 'VERSION')],
            exclude: ['*.cache'],
            artifacts: [
              { type: 'postgres', name: 'mealie', database: name, host: '127.0.0.1', format: 'custom', globals: true },
              { type: 'mysql', name: 'wiki', database: name, user: mysqlUser, password: await secretFile('mysql-pw', SECRETS.mysql) },
              { type: 'sqlite', name: 'lldap', path: sqlitePath },
              { type: 'redis', name: 'cache', port: redisPort, password: await secretFile('redis-pw', SECRETS.redis) },
              { type: 'redis', name: 'sessions' }, // the machine's Redis: --save "" --appendonly no
              { type: 'opensearch', name: 'search', url: search.url, repositoryPath: repo, username: 'admin', password: await secretFile('os-pw', SECRETS.opensearch) },
              { type: 'command', name: 'journal', command: ['cat', join(data, 'journal.log')] },
              { type: 'files', name: 'jellyfin', paths: [join(data, 'jellyfin')], optionalPaths: [join(data, 'workspace')] },
            ],
          },
        ],
      },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
  const handle = await t.client.workflow.start('backupPlan', { taskQueue, workflowId: uniqueName('all'), args: [{ plan: 'everything', tier: 'manual' }] });
  result = (await handle.result()) as BackupResult;
  meta = parse(await readFile(join(result.snapshot_dir, 'metadata.yml'), 'utf8'));
  (globalThis as { historyOfAll?: string }).historyOfAll = await historyText(handle);
}, 170_000);

afterAll(async () => {
  writer?.kill();
  await t?.close();
  await search?.stop();
  await host?.stop();
  await execa('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave'], { reject: false, env: { REDISCLI_AUTH: SECRETS.redis } });
  for (const db of [name, `${name}_restored`]) await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP ROLE IF EXISTS ${name}_reader`).catch(() => undefined);
  await mariadb(`DROP DATABASE IF EXISTS ${name}; DROP DATABASE IF EXISTS ${name}_restored; DROP USER IF EXISTS '${mysqlUser}'@'localhost';`).catch(() => undefined);
});

const inSnapshot = (rel: string) => join(result.snapshot_dir, rel);

describe('every artifact type, captured over SSH in one run', () => {
  it('completes, with the ephemeral Redis skipped rather than failed', () => {
    expect(result.status).toBe('Completed');
    const statuses = Object.fromEntries(Object.entries(meta.components as Record<string, { status: string }>).map(([k, v]) => [k, v.status]));
    expect(statuses).toEqual({ mealie: 'ok', wiki: 'ok', lldap: 'ok', cache: 'ok', sessions: 'skipped', search: 'ok', journal: 'ok', jellyfin: 'ok' });
    expect(meta.components.sessions.details).toMatchObject({ ephemeral: true });
    expect(meta.sources[0].app_version).toBe('lldap 0.6.1');
  });

  it('postgres (custom format): restores with pg_restore, row counts match the metadata, roles are in the globals', async () => {
    expect(meta.components.mealie.details.row_counts).toEqual({ 'public.meals': 120, 'public."Empty Table"': 0 });
    await psql(`CREATE DATABASE ${name}_restored`);
    await execa('pg_restore', ['-h', '127.0.0.1', '-U', 'postgres', '--no-owner', '-d', `${name}_restored`, inSnapshot('database/mealie.dump')]);
    expect(await psql('SELECT count(*) || \':\' || sum(id) FROM meals', `${name}_restored`)).toBe(`120:${(120 * 121) / 2}`);
    expect(await readFile(inSnapshot('database/mealie.globals.sql'), 'utf8')).toContain(`CREATE ROLE ${name}_reader`);
  });

  it('mysql: the dump (taken with a password from an option file) loads into a scratch database', async () => {
    await mariadb(`CREATE DATABASE ${name}_restored`);
    const dump = (await readFile(inSnapshot('database/wiki.sql'), 'utf8')).replace(new RegExp(`\`${name}\``, 'g'), `\`${name}_restored\``);
    await execa('mariadb', ['-u', 'root', `${name}_restored`], { input: dump });
    expect(await mariadb('SELECT GROUP_CONCAT(COALESCE(body, "NULL") ORDER BY id) FROM wiki', `${name}_restored`)).toBe("first,sec'ond,NULL");
  });

  it('sqlite under continuous writes: the copy passes integrity_check and holds the recorded rows', async () => {
    const copy = inSnapshot('database/lldap.sqlite');
    expect((await execa('sqlite3', [copy, 'PRAGMA integrity_check'])).stdout).toBe('ok');
    const rows = Number((await execa('sqlite3', [copy, 'SELECT count(*) FROM users'])).stdout);
    expect(rows).toBeGreaterThan(5000); // the writer was busy during the capture
    expect(meta.components.lldap.details).toMatchObject({ integrity: 'ok', tables: { users: rows } });
  });

  it('redis: the rdb passes redis-check-rdb and a throwaway server reads the keys back; the AOF came along', async () => {
    await execa('redis-check-rdb', [inSnapshot('database/cache.rdb')]);
    const dir = await tempDir('redis-restore');
    await writeFile(join(dir, 'dump.rdb'), await readFile(inSnapshot('database/cache.rdb')));
    const port = await freePort();
    await execa('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'yes', '--dir', dir, '--save', '', '--appendonly', 'no']);
    try {
      await waitForPort(port, 10_000);
      expect(await execa('redis-cli', ['-p', String(port), 'DBSIZE']).then((r) => r.stdout.trim())).toBe('50');
      expect(await execa('redis-cli', ['-p', String(port), 'GET', 'recipe:7']).then((r) => r.stdout.trim())).toBe('value 7');
    } finally {
      await execa('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { reject: false });
    }
    expect(meta.components.cache.details).toMatchObject({ aof: true, redis_check_rdb: 'ok', keys: 50 });
    expect(meta.components.cache.paths).toContain('database/cache.aof');
  });

  it('opensearch (stand-in): the repository is registered and its files pulled', async () => {
    expect(search.calls.some((c) => c.method === 'PUT' && /^\/_snapshot\/lifeboat\/lifeboat-everything-/.test(c.path))).toBe(true);
    const repoCopy = inSnapshot(`opensearch/search/${host.dataDir.replace(/^\//, '')}/opensearch-repo`);
    expect((await readdir(repoCopy)).some((f) => f.startsWith('snap-'))).toBe(true);
  });

  it('command output and files: byte-exact, excludes applied, a missing optional path recorded', async () => {
    expect(await readFile(inSnapshot('commands/journal.txt'), 'utf8')).toBe('Nov 22 fastdeploy[1]: started\n');
    const tree = inSnapshot(`files/apps/jellyfin/${host.dataDir.replace(/^\//, '')}/jellyfin`);
    expect(await readFile(join(tree, 'library.db'), 'utf8')).toBe('library');
    expect(await readdir(join(tree, 'cache')).catch(() => [])).toEqual([]);
    expect(meta.components.jellyfin.details.missing_optional).toEqual([join(host.dataDir, 'workspace')]);
  });

  it('no password (MariaDB, Redis, OpenSearch) appears in the workflow history', () => {
    const history = (globalThis as { historyOfAll?: string }).historyOfAll!;
    expect(history).toContain('everything');
    for (const token of TOKENS) expect(history).not.toContain(token);
  });
});
