// The demo: Temporal's dev server (its own SQLite file, kept running so the Web UI stays up), a small demo
// source on this machine, local storage, and one real backupPlan run through a Lifeboat worker; the archive is
// age-encrypted and its record signed, with demo keys kept in .lifeboat-demo/keys.
import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { startBackup, RESULT_PREFIX } from '../src/cli/backup';
import { parseConfig } from '../src/config/load';
import { searchAttributeArgs } from '../src/shared/search-attributes';
import { formatPublicKey, generateSigningKey, parsePrivateKey } from '../src/snapshot/signing';
import type { BackupResult } from '../src/shared/types';
import { createLifeboatWorker } from '../src/workers/worker';
import { freePort, startTemporalDev, temporalDevRunning } from './lib/services';

const DIR = resolve(process.env.LIFEBOAT_DEMO_DIR ?? '.lifeboat-demo');
const STATE = join(DIR, 'temporal.json');

interface DemoServer { address: string; uiUrl: string; pid: number }

async function main(): Promise<void> {
  if (process.argv.includes('--stop')) return stop();
  await mkdir(DIR, { recursive: true, mode: 0o700 });
  const server = await ensureServer();
  const configPath = await writeDemoConfig(server.address);
  await seedSource();

  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = parseConfig(await readFile(configPath, 'utf8'), configPath);
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const worker = await createLifeboatWorker({ connection: nativeConnection, namespace: 'default', taskQueue: config.temporal.taskQueue, configPath });
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });

  const result = await worker.runUntil(async () => {
    const handle = await startBackup(client, config, { plan: 'demo', tier: 'manual' });
    console.log(`backupPlan started: ${handle.workflowId}`);
    return { id: handle.workflowId, result: (await handle.result()) as BackupResult };
  });
  await client.connection.close();
  await nativeConnection.close();

  const r = result.result;
  console.log('');
  console.log(`Snapshot:        ${r.snapshot} (${r.status}, ${r.manifest.files} files)`);
  console.log(`Snapshot dir:    ${r.snapshot_dir}`);
  console.log(`Archive stored:  ${r.location} (${r.size_bytes} bytes, sha256 ${r.checksum_sha256})`);
  console.log(`Encrypted with:  age (identity ${join(DIR, 'keys/age.key')}); record signed with ${join(DIR, 'keys/signing.key')}`);
  console.log(`Verify it:       (cd ${r.snapshot_dir} && sha256sum -c manifest.sha256)`);
  console.log(`Fetch it back:   ./bin/lifeboat.mjs -c ${join(DIR, 'lifeboat.yaml')} snapshots fetch latest --decrypt --to /tmp/lifeboat-demo-fetch`);
  console.log(`Temporal Web UI: ${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(result.id)}`);
  console.log(`Stop the server: npm run demo -- --stop`);
  console.log(`${RESULT_PREFIX}${JSON.stringify(r)}`);
}

/** Reuses the demo's server if it is still up, else starts one detached so the Web UI outlives this script. */
async function ensureServer(): Promise<DemoServer> {
  if (existsSync(STATE)) {
    const saved = JSON.parse(await readFile(STATE, 'utf8')) as DemoServer;
    if (await temporalDevRunning(saved.address)) return saved;
  }
  const uiPort = (await portFree(8233)) ? 8233 : await freePort();
  const port = (await portFree(7233)) ? 7233 : await freePort();
  const t = await startTemporalDev({
    dbFile: join(DIR, 'temporal.db'),
    port,
    uiPort,
    logFile: join(DIR, 'temporal.log'),
    detached: true,
    searchAttributeArgs: searchAttributeArgs(),
  });
  const server = { address: t.address, uiUrl: t.uiUrl!, pid: t.pid };
  await writeFile(STATE, JSON.stringify(server));
  console.log(`Temporal dev server started (${t.address}, data in ${t.dbFile})`);
  return server;
}

async function stop(): Promise<void> {
  if (!existsSync(STATE)) return console.log('no demo server recorded');
  const { pid } = JSON.parse(await readFile(STATE, 'utf8')) as DemoServer;
  try {
    process.kill(-pid, 'SIGTERM');
    console.log(`stopped the demo Temporal server (pid ${pid})`);
  } catch {
    console.log('the demo Temporal server was not running');
  }
  await rm(STATE, { force: true });
}

async function portFree(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((res) => {
    const srv = net.createServer().once('error', () => res(false)).listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** What `lifeboat keys init` makes, kept across demo runs so older demo snapshots stay readable and valid. */
async function demoKeys(): Promise<{ signingKey: string; publicKey: string; identity: string; recipient: string }> {
  const dir = join(DIR, 'keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const signingKey = join(dir, 'signing.key');
  const identity = join(dir, 'age.key');
  if (!existsSync(signingKey)) await writeFile(signingKey, generateSigningKey().privatePem, { mode: 0o600 });
  if (!existsSync(identity)) await execa('age-keygen', ['-o', identity]);
  const recipient = (await execa('age-keygen', ['-y', identity])).stdout.trim();
  const publicKey = formatPublicKey(createPublicKey(parsePrivateKey(await readFile(signingKey, 'utf8'))));
  return { signingKey, publicKey, identity, recipient };
}

async function writeDemoConfig(address: string): Promise<string> {
  const path = join(DIR, 'lifeboat.yaml');
  const keys = await demoKeys();
  const config = {
    temporal: { address, taskQueue: 'lifeboat-demo' },
    backupRoot: join(DIR, 'backups'),
    signing: { key: { file: keys.signingKey }, publicKey: keys.publicKey },
    storages: { local: { type: 'local', path: join(DIR, 'storage') } },
    plans: {
      demo: {
        storages: ['local'],
        archive: { encryption: { age: { recipients: [keys.recipient], identity: { file: keys.identity } } } },
        metadata: { purpose: 'npm run demo' },
        sources: [
          {
            name: 'demo-app',
            host: 'local',
            appVersion: ['cat', join(DIR, 'source/VERSION')],
            artifacts: [
              { type: 'files', name: 'app', paths: [join(DIR, 'source/site'), join(DIR, 'source/home/deploy')], exclude: ['cache/'] },
            ],
          },
        ],
      },
    },
  };
  await writeFile(path, `# Written by npm run demo; see README for the full reference.\n${stringify(config)}`);
  return path;
}

/** A small app tree, with a SOPS key that the deny-list must keep out and a cache that `exclude` skips. */
async function seedSource(): Promise<void> {
  const files: Record<string, string> = {
    'VERSION': 'demo-app 1.0.0\n',
    'site/.env': 'DATABASE_URL=postgres://app@localhost/app\n',
    'site/services/web/compose.yml': 'services:\n  web:\n    image: nginx:1.27\n',
    'site/cache/thumb.tmp': 'cache\n',
    'home/deploy/runners/deploy.sh': '#!/bin/sh\necho deploying\n',
    'home/deploy/.config/sops/age/keys.txt': 'AGE-SECRET-KEY-1DEMODONOTCOPY\n',
  };
  for (const [rel, content] of Object.entries(files)) {
    const p = join(DIR, 'source', rel);
    await mkdir(join(p, '..'), { recursive: true });
    if (!existsSync(p)) await writeFile(p, content);
  }
  await writeFile(join(DIR, 'source/site/last-demo-run.txt'), `${new Date().toISOString()}\n`);
}

main().catch((err) => {
  console.error(`demo failed: ${(err as Error)?.stack ?? err}`);
  process.exit(1);
});
