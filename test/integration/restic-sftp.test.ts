// sftp: restic repositories use Lifeboat's pinned knownHosts and key, like the sources: a real sshd (internal-sftp)
// and real restic. The known_hosts path holds a space and a quote, so the quoting for restic's splitter is tested
// for real; the host's key missing from, or different in, the pinned file is HostKeyRejected, not a hang or a prompt.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { Config } from '../../src/config/schema';
import { openStorage } from '../../src/storage';
import { isRestic } from '../../src/storage/restic';
import { tempDir } from '../support/fixtures';

const root = await tempDir('restic-sftp');
let host: SshHost;
let pinned: string;

beforeAll(async () => {
  pinned = join(root, "pinned \"dir's\"", 'known hosts');
  host = await startSshHost({ name: 'nas', baseDir: root });
  await mkdir(dirname(pinned), { recursive: true });
  await copyFile(host.knownHostsFile, pinned);
  await writeFile(join(root, 'password'), `${randomBytes(8).toString('hex')}\n`, { mode: 0o600 });
  await mkdir(join(root, 'data/sub'), { recursive: true });
  await writeFile(join(root, 'data/sub/file.bin'), randomBytes(100_000));
});

afterAll(async () => {
  await host?.stop();
  await execa('rm', ['-rf', root]);
});

/** A config whose top-level ssh: names the key and `knownHosts`; the storage inherits them. */
function storageConfig(knownHosts: string) {
  const text = {
    backupRoot: join(root, 'backups'),
    ssh: { identityFile: host.identityFile, knownHosts },
    storages: { nas: { type: 'restic', repository: `sftp://${host.user}@127.0.0.1:${host.port}/${join(host.dataDir, 'repo')}`, password: { file: join(root, 'password') }, init: true } },
    plans: { p: { storages: ['nas'], sources: [{ name: 'l', host: 'local', artifacts: [{ type: 'command', name: 'c', command: ['true'] }] }] } },
  };
  return Config.parse(text).storages.nas!;
}

describe('sftp: restic repository', () => {
  it('inherits ssh: from the top level and refuses a config without knownHosts', () => {
    const st = storageConfig(pinned);
    expect(st).toMatchObject({ ssh: { identityFile: host.identityFile, knownHosts: pinned } });
    const bare = Config.safeParse({ backupRoot: '/b', storages: { nas: { type: 'restic', repository: 'sftp:u@h:/r', password: { env: 'X' } } }, plans: {} });
    expect(bare.success).toBe(false);
    expect(JSON.stringify(bare.error?.issues)).toContain('needs a pinned knownHosts');
  });

  it('creates the repository and backs up through the pinned host key', async () => {
    const backend = await openStorage('nas', storageConfig(pinned));
    if (!isRestic(backend)) throw new Error('not restic');
    await backend.check();
    const out = await backend.backupDir(join(root, 'data'), { plan: 'p', snapshot: 'p-20261202T000000', tier: 'daily', createdAt: '2026-12-02T00:00:00Z' });
    expect(out.summary.total_files_processed).toBe(1);
    expect((await readFile(join(host.dataDir, 'repo', 'config'))).length).toBeGreaterThan(0); // on the sftp host
  });

  it('a host key missing from, or different in, the pinned file is HostKeyRejected', async () => {
    const empty = join(root, 'empty_known_hosts');
    await writeFile(empty, '');
    const other = join(root, 'other_known_hosts');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(root, 'impostor')]);
    const [type, key] = (await readFile(join(root, 'impostor.pub'), 'utf8')).split(' ');
    await writeFile(other, `[127.0.0.1]:${host.port} ${type} ${key}\n`);
    for (const knownHosts of [empty, other]) {
      const started = Date.now();
      const err = await (await openStorage('nas', storageConfig(knownHosts))).check().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'HostKeyRejected' });
      // ssh's own words from its -E log: restic's copy of ssh's stderr may be lost when restic exits first.
      expect((err as Error).message).toMatch(/\(ssh: (No \S+ host key is known|Host key for \S+ has changed)/);
      expect(Date.now() - started).toBeLessThan(30_000); // refused at once, not retried by restic
    }
  });
});
