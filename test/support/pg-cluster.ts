// A private PostgreSQL cluster from the machine's own server binaries (initdb + pg_ctl, run as the `postgres` OS
// user), for tests that need a WAL position nobody else moves: the shared server on 5432 takes every other test's
// writes. wal_level=minimal and no autovacuum or timed checkpoint: an idle cluster writes no WAL at all.
import { readdirSync } from 'node:fs';
import { appendFile, chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { freePort } from '../../scripts/lib/services';

export interface PgCluster {
  port: number;
  psql(sql: string, db?: string): Promise<string>;
  stop(): Promise<void>;
}

function serverBin(): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  return join('/usr/lib/postgresql', versions[0], 'bin');
}

export async function startPgCluster(dir: string, extra: Record<string, string | number> = {}): Promise<PgCluster> {
  const bin = serverBin();
  const data = join(dir, 'data');
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
  await execa('chown', ['postgres:postgres', dir]);
  const asPostgres = (cmd: string, args: string[]) => execa('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { cwd: dir });
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const settings = { port, listen_addresses: "'127.0.0.1'", unix_socket_directories: `'${dir}'`, wal_level: 'minimal', max_wal_senders: 0, autovacuum: 'off', checkpoint_timeout: '1d', fsync: 'off', ...extra };
  await appendFile(join(data, 'postgresql.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
  await asPostgres('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', 'start']);
  return {
    port,
    psql: (sql, db = 'postgres') =>
      execa('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-c', sql]).then((r) => r.stdout.trim()),
    stop: async () => {
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    },
  };
}
