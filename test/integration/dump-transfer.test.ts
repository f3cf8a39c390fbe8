// A dump from an SSH source goes through OpenSSH's client into `cat` and the file, never through the worker
// (capture-stream.ts, openssh-exec.ts): on a real sshd, the bytes arrive exactly, the worker process reads none of
// them (/proc/self/io), a full disk and a cancellation stop the remote command, a secret arrives over stdin, and a
// host key that is not pinned is refused.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshHost, type SshHost as SshService } from '../../scripts/lib/services';
import { toFailure } from '../../src/activities/run';
import { LocalHost } from '../../src/remote/local';
import { SshHost } from '../../src/remote/ssh';
import { streamToFile } from '../../src/sources/capture-stream';
import { tempDir, uniqueName } from '../support/fixtures';
import type { ApplicationFailure } from '@temporalio/common';

const root = await tempDir('dump-transfer');
let service: SshService;
let host: SshHost;

const settings = (knownHosts = service.knownHostsFile) => ({ host: service.host, port: service.port, user: service.user, identityFile: service.identityFile, knownHosts });
const sha256 = (path: string) => new Promise<string>((resolve, reject) => createReadStream(path).pipe(createHash('sha256')).on('finish', function (this: ReturnType<typeof createHash>) { resolve(this.digest('hex')); }).on('error', reject));
/**
 * Bytes this process's threads have read through read() so far, sockets and pipes included. Per thread: the process's
 * own /proc/self/io also adds what its reaped children (cat, ssh) read.
 */
const bytesRead = () => readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))?.[1] ?? 0), 0);
/** Processes whose command line holds `marker` (the remote host is this machine). */
const running = async (marker: string) => (await execa('pgrep', ['-f', marker], { reject: false })).stdout.split('\n').filter(Boolean).length;

beforeAll(async () => {
  service = await startSshHost({ name: 'db', baseDir: root });
  host = await SshHost.open('db', settings());
}, 60_000);
afterAll(async () => {
  host?.close();
  await service?.stop();
});

describe('a dump from an SSH source', () => {
  it('arrives byte for byte, and the worker reads none of its bytes', async () => {
    const target = join(root, 'big.bin');
    const argv = ['sh', '-c', 'head -c 268435456 /dev/urandom | tee "$0" && echo said-on-stderr >&2', join(service.dataDir, 'source.bin')];
    const before = bytesRead();
    const dump = await streamToFile(host, argv, target, {});
    const read = bytesRead() - before;
    await dump.commit();
    expect(dump.exitCode).toBe(0);
    expect(dump.bytes).toBe(268435456);
    expect(dump.stderr).toContain('said-on-stderr');
    expect(await sha256(target)).toBe(await sha256(join(service.dataDir, 'source.bin')));
    // Through ssh2 every byte was read here (256 MiB and more); now only ssh's stderr and the file's size.
    expect(read).toBeLessThan(4 * 1024 * 1024);
  }, 60_000);

  it("hands the command's exit code back and leaves the partial file to the caller", async () => {
    const dump = await streamToFile(host, ['sh', '-c', 'printf partial; exit 3'], join(root, 'exit3.sql'), {});
    expect(dump.exitCode).toBe(3);
    expect(readFileSync(dump.partial, 'utf8')).toBe('partial');
    await dump.discard();
    expect(existsSync(dump.partial)).toBe(false);
  });

  it('gets its secret over stdin into a private file, never on a command line', async () => {
    const secret = 'pw-"$(x)`y\\:z';
    const dump = await streamToFile(host, ['sh', '-c', 'ls -l "$PGPASSFILE" | cut -c1-10; cat "$PGPASSFILE"'], join(root, 'secret.out'), { secretFile: { env: 'PGPASSFILE', content: secret } });
    await dump.commit();
    expect(readFileSync(join(root, 'secret.out'), 'utf8')).toBe(`-rw-------\n${secret}`);
  });

  it('on a full disk fails as InsufficientSpace at once, stops the remote command and leaves no file', async () => {
    const marker = uniqueName('endless-dump');
    const target = join(root, 'full.sql');
    symlinkSync('/dev/full', `${target}.partial`); // every write fails with ENOSPC
    const started = Date.now();
    const err = await streamToFile(host, ['sh', '-c', 'while :; do head -c 1048576 /dev/zero || exit 1; done', marker], target, {}).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(err?.code).toBe('ENOSPC');
    expect((toFailure(err) as ApplicationFailure).type).toBe('InsufficientSpace');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(`${target}.partial`)).toBe(false);
    for (let i = 0; i < 50 && (await running(marker)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await running(marker)).toBe(0);
  }, 30_000);

  it('when cancelled, stops the remote command and leaves no file', async () => {
    const marker = uniqueName('cancelled-dump');
    const target = join(root, 'cancelled.sql');
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('cancelled by the test')), 1000);
    const err = await streamToFile(host, ['sh', '-c', 'while :; do head -c 65536 /dev/zero; sleep 0.05; done', marker], target, { signal: abort.signal }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/cancelled/);
    expect(existsSync(`${target}.partial`)).toBe(false);
    for (let i = 0; i < 50 && (await running(marker)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await running(marker)).toBe(0);
  }, 30_000);

  it('is refused with HostKeyRejected when the host key is not pinned', async () => {
    const other = join(root, 'other_known_hosts');
    writeFileSync(other, service.hostKeyLine.replace(/ \S+$/, ' AAAAC3NzaC1lZDI1NTE5AAAAIO3N2sa0VB0Vs1kN5p1H4HkWJnrwm5nzyo5nVCvbVQxQ') + '\n');
    const stranger = await SshHost.open('db', settings(other));
    try {
      const err = await streamToFile(stranger, ['echo', 'never'], join(root, 'refused.out'), {}).catch((e: unknown) => e as ApplicationFailure & { code?: string });
      expect((err as { code?: string }).code).toBe('HostKeyRejected');
      expect(existsSync(join(root, 'refused.out.partial'))).toBe(false);
    } finally {
      stranger.close();
    }
  });

  it('names an identity file that others may read as a ConfigError, not a refused key', async () => {
    const loose = join(root, 'loose_key');
    writeFileSync(loose, readFileSync(service.identityFile), { mode: 0o644 });
    const careless = await SshHost.open('db', { ...settings(), identityFile: loose });
    try {
      const err = (await streamToFile(careless, ['echo', 'never'], join(root, 'loose.out'), {}).catch((e: unknown) => e)) as { code?: string; message: string };
      expect([err.code, err.message]).toEqual(['ConfigError', expect.stringMatching(/others may read it/)]);
    } finally {
      careless.close();
    }
  });
});

describe('a dump from a local command', () => {
  it('when cancelled, ends even while a process the command started still holds the pipe', async () => {
    const marker = uniqueName('held-pipe');
    const target = join(root, 'held.out');
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('cancelled by the test')), 500);
    const started = Date.now();
    // sh is stopped on cancel; the background loop it started keeps the pipe's write end open.
    const err = await streamToFile(new LocalHost('here'), ['sh', '-c', '(while :; do echo x; sleep 0.01; done) & wait', marker], target, { signal: abort.signal }).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/cancelled/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(`${target}.partial`)).toBe(false);
    await execa('pkill', ['-f', marker], { reject: false });
  }, 30_000);
});
