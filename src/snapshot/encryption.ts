// age encryption of archives (the `age` program: a well-kept implementation, not our own cryptography).
// The backup host encrypts to recipients (public keys) only, so it cannot read its own old backups; the
// identity (private key) is a secret reference used by restore, verify and `snapshots fetch --decrypt`.
import { constants } from 'node:fs';
import { mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { SecretRef } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { dieWithWorker } from '../shared/die-with-worker';
import { LifeboatError } from '../shared/errors';

/** Every age file begins with this line; tests and `file` use it to tell ciphertext from a plain archive. */
export const AGE_HEADER = 'age-encryption.org/v1';

export function encryptArgv(recipients: string[]): [string, string[]] {
  return ['age', ['--encrypt', ...recipients.flatMap((r) => ['--recipient', r])]];
}

/** Encrypts one file to `output` (via `.partial`, removed on failure): media objects (storage/media-objects.ts). */
export async function encryptFile(input: string, output: string, recipients: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
  const [bin, args] = encryptArgv(recipients);
  const partial = `${output}.partial`;
  const res = await execa(...dieWithWorker(bin, [...args, '--output', partial, '--', input]), { reject: false, stdin: 'ignore', cancelSignal: opts.signal, forceKillAfterDelay: 5000 });
  opts.signal?.throwIfAborted();
  if ((res as { code?: string }).code === 'ENOENT' || res.exitCode !== 0) {
    await rm(partial, { force: true });
    const failure = ageFailure(input, res);
    throw failure.code === 'MissingTool' ? failure : new LifeboatError('CommandFailed', `age could not encrypt ${input}: ${String(res.stderr ?? '').trim().slice(-500) || `exit ${res.exitCode}`}`);
  }
  await rename(partial, output);
}

/** Where the identity comes from: the config's secret reference, or a file named on the command line. */
export type IdentitySource = { ref: SecretRef } | { file: string };

/**
 * Decrypts `input` to `output` (via `.partial`, removed on failure). A missing or wrong identity is a permanent
 * DecryptFailed, raised before any byte of plaintext exists. The identity goes to age on stdin, so a secret from
 * the environment never touches the disk.
 */
export async function decryptArchive(input: string, output: string, identity: IdentitySource | undefined, opts: { signal?: AbortSignal } = {}): Promise<void> {
  if (!identity) throw new LifeboatError('DecryptFailed', `${input} is encrypted with age and no identity is configured (archive.encryption.age.identity, or --identity FILE)`);
  const text = await identityText(identity);
  const partial = `${output}.partial`;
  // `--identity -` reads the identity from stdin (the archive is a file argument, so stdin is free for it).
  const res = await execa(...dieWithWorker('age', ['--decrypt', '--identity', '-', '--output', partial, '--', input]), {
    reject: false,
    input: `${text}\n`,
    cancelSignal: opts.signal,
    forceKillAfterDelay: 5000,
  });
  opts.signal?.throwIfAborted();
  if ((res as { code?: string }).code === 'ENOENT' || res.exitCode !== 0) {
    await rm(partial, { force: true });
    throw ageFailure(input, res);
  }
  await rename(partial, output);
}

/** age did not run (MissingTool) or refused (DecryptFailed: no matching identity, damaged ciphertext), from its result or error. */
export function ageFailure(what: string, res: { code?: string; stderr?: unknown; exitCode?: number }): LifeboatError {
  if (res.code === 'ENOENT') return new LifeboatError('MissingTool', 'age is not installed on the backup host (Debian: apt install age)');
  const said = String(res.stderr ?? '').trim().split('\n').slice(-3).join(' ');
  return new LifeboatError('DecryptFailed', `cannot decrypt ${what}: ${said || `age exited ${res.exitCode ?? 'on a signal'}`}`);
}

/**
 * `age --decrypt` from stdin to stdout, for a stream. The identity cannot take stdin here, and age cannot open a
 * Node pipe as /dev/fd/N (a socket): a secret from the config goes through a FIFO in a private temporary directory,
 * so it never touches the disk. A missing identity fails here, before the caller reads a byte of ciphertext.
 * `cleanup` removes the FIFO once the process has ended.
 */
export async function startDecryptor(identity: IdentitySource, opts: { cancelSignal: AbortSignal }): Promise<{ proc: ResultPromise<{ buffer: { stdout: false } }>; cleanup: () => Promise<void> }> {
  const options = { cancelSignal: opts.cancelSignal, forceKillAfterDelay: 5000, buffer: { stdout: false } } as const;
  const text = await identityText(identity);
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-age-')); // 0700
  const cleanup = () => rm(dir, { recursive: true, force: true });
  const fifo = join(dir, 'identity');
  await execa('mkfifo', ['-m', '600', '--', fifo]).catch(async (err: unknown) => {
    await cleanup();
    throw err;
  });
  const proc = execa(...dieWithWorker('age', ['--decrypt', '--identity', fifo]), options);
  let ended = false;
  void proc.then(() => (ended = true), () => (ended = true));
  void feedFifo(fifo, `${text}\n`, () => ended).catch(() => proc.kill());
  return { proc, cleanup };
}

/**
 * Writes `text` into the FIFO once age opens it; gives up when age has ended without opening it. The non-blocking
 * open only tells that a reader is there (a blocking one would wait forever for an age that died); the write goes
 * through a blocking descriptor opened meanwhile, so an identity larger than the pipe's buffer is not cut short.
 */
async function feedFifo(fifo: string, text: string, ended: () => boolean): Promise<void> {
  for (;;) {
    try {
      const probe = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK); // ENXIO until a reader opens it
      try {
        const fh = await open(fifo, constants.O_WRONLY); // a reader is there: returns at once
        try {
          await fh.writeFile(text);
        } finally {
          await fh.close();
        }
      } finally {
        await probe.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || ended()) throw err;
      await sleep(5);
    }
  }
}

export async function identityText(identity: IdentitySource): Promise<string> {
  const ref = 'ref' in identity ? identity.ref : { file: identity.file };
  return resolveSecret(ref, 'age identity (archive.encryption.age.identity or --identity)');
}
