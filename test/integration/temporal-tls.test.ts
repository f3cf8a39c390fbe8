// Production Temporal over TLS with client certificates, a real handshake: a TLS-terminating proxy (node:tls,
// HTTP/2 over ALPN, client certificates required and checked against our CA) in front of the test's dev server,
// which cannot serve TLS itself (`temporal server start-dev` has no TLS flags). The CLI's client and a real
// `lifeboat worker` process connect with CA + client certificate and run a backup; a wrong CA and a missing
// client certificate fail fast with one clear line.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient } from '../../src/cli/client';
import type { Config } from '../../src/config/schema';
import type { BackupResult } from '../../src/shared/types';
import { openNativeConnection } from '../../src/temporal/connection';
import { lifeboatFailure, tempDir, uniqueName, writeConfig } from '../support/fixtures';
import { makeTestPki, type TestPki } from '../support/tls-certs';
import { startTlsProxy, type TlsProxy } from '../support/tls-proxy';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const root = await tempDir('tls');
const taskQueue = uniqueName('tls-it');
let pki: TestPki;
let proxy: TlsProxy;
let worker: WorkerProcess | undefined;
let temporal: Config['temporal'];

beforeAll(async () => {
  pki = await makeTestPki(join(root, 'pki'));
  proxy = await startTlsProxy({ target: inject('temporalAddress'), cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert });
  temporal = { address: proxy.address, namespace: 'default', taskQueue, tls: { ca: pki.caCert, cert: pki.clientCert, key: { file: pki.clientKey } } };
});

afterAll(async () => {
  await worker?.stop();
  await proxy?.close();
  await rm(root, { recursive: true, force: true });
});

describe('Temporal over TLS with a client certificate', () => {
  it('the CLI client and a lifeboat worker connect through TLS and run a backup', async () => {
    const data = join(root, 'data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'hello.txt'), 'over TLS\n');
    const configPath = await writeConfig(root, {
      backupRoot: join(root, 'backups'),
      temporal,
      storages: { local: { type: 'local', path: join(root, 'store') } },
      plans: { tls: { storages: ['local'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [data] }] }] } },
    });
    worker = startWorkerProcess(configPath);
    expect(await worker.waitForLine(/lifeboat worker: task queue/)).toContain(`on ${proxy.address} (default, TLS)`);

    const client = await connectClient(temporal);
    try {
      const result = (await client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('tls-backup'), args: [{ plan: 'tls', tier: 'manual' }] })) as BackupResult;
      expect(result.status).toBe('Completed');
    } finally {
      await client.connection.close();
    }
    // Both sides came through the proxy with our client certificate: the client (grpc-js) and the worker (Rust core).
    expect(proxy.accepted.filter((cn) => cn === 'client').length).toBeGreaterThanOrEqual(2);
  });

  it('the worker connection (Rust core) connects with the same options', async () => {
    const connection = await openNativeConnection(temporal);
    try {
      const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(ns.namespaceInfo?.name).toBe('default');
    } finally {
      await connection.close();
    }
  });

  it('a server name override is checked against the server certificate', async () => {
    const client = await connectClient({ ...temporal, tls: { ...temporal.tls, serverName: 'temporal.test' } });
    await client.connection.close();
    const wrong = await lifeboatFailure(connectClient({ ...temporal, tls: { ...temporal.tls, serverName: 'elsewhere.test' } }));
    expect(wrong.message).toMatch(/^TLS: the server certificate of Temporal at .* does not name elsewhere\.test .*temporal\.tls\.serverName/);
  });

  it('a wrong CA fails within seconds, naming TLS and the certificate, for the CLI and for the worker', async () => {
    const wrongCa = { ...temporal, tls: { ...temporal.tls, ca: pki.otherCaCert } };
    const started = Date.now();
    const cli = await lifeboatFailure(connectClient(wrongCa));
    const native = await lifeboatFailure(openNativeConnection(wrongCa));
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const err of [cli, native]) {
      expect(err.code).toBe('TemporalUnavailable');
      expect(err.message).toBe(`TLS: the server certificate of Temporal at ${proxy.address} is not signed by temporal.tls.ca (self-signed certificate in certificate chain)`);
    }
  });

  it('without a client certificate the server refuses the connection, and the message says what to set', async () => {
    const refusedBefore = proxy.refused.length;
    const started = Date.now();
    const err = await lifeboatFailure(connectClient({ ...temporal, tls: { ca: pki.caCert } }));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err.message).toBe(`TLS: Temporal at ${proxy.address} requires a client certificate (tlsv13 alert certificate required); set temporal.tls.cert and temporal.tls.key`);
    // A certificate from another CA is refused too.
    const stranger = await lifeboatFailure(connectClient({ ...temporal, tls: { ca: pki.caCert, cert: pki.strangerCert, key: { file: pki.strangerKey } } }));
    expect(stranger.message).toMatch(/refused the client certificate temporal\.tls\.cert/);
    expect(proxy.refused.length).toBeGreaterThanOrEqual(refusedBefore + 2);
  });

  it('plain (no TLS) against the TLS port says the server speaks TLS', async () => {
    const started = Date.now();
    const plain = { address: proxy.address, namespace: 'default', taskQueue };
    const cli = await lifeboatFailure(connectClient(plain));
    const native = await lifeboatFailure(openNativeConnection(plain));
    expect(Date.now() - started).toBeLessThan(15_000); // grpc-js's connect timeout (10 s), then one handshake
    for (const err of [cli, native]) expect(err.message).toBe(`Temporal at ${proxy.address} speaks TLS: set temporal.tls (with ca for a private CA, cert and key if it wants a client certificate)`);
  });
});
