// Checks the throwaway services the integration tests rely on, so a broken fixture fails here, plainly.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary, sshArgs, startMinio, startSshHost, startTemporalDev, waitForPort } from '../../scripts/lib/services';
import { searchAttributeArgs } from '../../src/shared/search-attributes';

const TIMEOUT = 60_000;
let baseDir: string;

beforeAll(async () => {
  baseDir = await mkdtemp(join(tmpdir(), 'lifeboat-services-'));
});
afterAll(async () => {
  await rm(baseDir, { recursive: true, force: true });
});

describe('sshd host', () => {
  it(
    'logs in with the pinned host key, refuses unknown host keys, and closes its port on stop',
    async () => {
      const host = await startSshHost({ name: 'web1', baseDir });
      try {
        const hi = await execa('ssh', [...sshArgs(host), 'echo', 'hi']);
        expect(hi.stdout).toBe('hi');

        const emptyKnownHosts = join(baseDir, 'empty_known_hosts');
        await writeFile(emptyKnownHosts, '');
        const refused = await execa('ssh', [...sshArgs(host, emptyKnownHosts), 'true'], { reject: false });
        expect(refused.exitCode).toBe(255);
        expect(refused.stderr).toMatch(/Host key verification failed/);
      } finally {
        await host.stop();
      }
      await expect(waitForPort(host.port, 500)).rejects.toThrow(/timed out/);
    },
    TIMEOUT,
  );

  it(
    'starts several hosts in parallel with one shared identity and known_hosts file',
    async () => {
      const shared = { baseDir, identityFile: join(baseDir, 'id_shared'), knownHostsFile: join(baseDir, 'kh_shared') };
      const hosts = await Promise.all(['db1', 'db2', 'db3'].map((name) => startSshHost({ name, ...shared })));
      try {
        const knownHosts = await readFile(shared.knownHostsFile, 'utf8');
        for (const host of hosts) {
          expect(knownHosts).toContain(host.hostKeyLine);
          const whoami = await execa('ssh', [...sshArgs(host), 'echo', host.name]);
          expect(whoami.stdout).toBe(host.name);
        }
      } finally {
        await Promise.all(hosts.map((host) => host.stop()));
      }
    },
    TIMEOUT,
  );
});

describe('MinIO', () => {
  it(
    'answers its health endpoint',
    async () => {
      const minio = await startMinio({ dataDir: join(baseDir, 'minio'), logFile: join(baseDir, 'minio.log') });
      try {
        const res = await fetch(`${minio.endpoint}/minio/health/ready`);
        expect(res.status).toBe(200);
      } finally {
        await minio.stop();
      }
    },
    TIMEOUT,
  );
});

describe('Temporal dev server', () => {
  it(
    'registers the Lifeboat search attributes',
    async () => {
      const temporal = await startTemporalDev({
        dbFile: join(baseDir, 'temporal.db'),
        headless: true,
        logFile: join(baseDir, 'temporal.log'),
        searchAttributeArgs: searchAttributeArgs(),
      });
      try {
        const list = await execa(findBinary('temporal'), ['operator', 'search-attribute', 'list', '--address', temporal.address]);
        expect(list.stdout).toContain('LifeboatPlan');
      } finally {
        await temporal.stop();
      }
    },
    TIMEOUT,
  );
});
