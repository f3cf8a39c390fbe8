// tar.zst (zstd -T0, all cores) or tar.gz (pigz when present), streamed: tar → compressor (→ age) → file, then hashed
// (with the prefix hashes a selective restore checks: stored-checkpoints.ts).
import { lstat, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import type { ArchiveFormat } from './naming';
import { dieWithWorker } from '../shared/die-with-worker';
import { encryptArgv } from './encryption';
import { sha256File } from './hash-files';
import { watchGrowth } from '../shared/bounded';
import { checkpointDistance, type StoredCheckpoints } from './stored-checkpoints';

/** Written first, in this order, when present. */
const LEADING_FILES = ['manifest.sha256', 'metadata.yml', 'media.json'];

export interface ArchiveInfo {
  path: string;
  format: ArchiveFormat;
  sha256: string;
  size: number;
  /** Set when the stored bytes are age ciphertext. */
  encryption?: 'age';
  /** Prefix hashes of the stored bytes, for the record (see stored-checkpoints.ts); not in workflow history. */
  checkpoints: StoredCheckpoints;
}

export function compressorArgv(format: ArchiveFormat, level?: number, hasPigz = false): string[] {
  if (format === 'tar.zst') return ['zstd', '-T0', `-${level ?? 3}`, '-q', '-c'];
  return [hasPigz ? 'pigz' : 'gzip', `-${Math.min(level ?? 6, 9)}`, '-c'];
}

export async function createArchive(
  snapshotDir: string,
  out: string,
  format: ArchiveFormat,
  opts: {
    level?: number;
    recipients?: string[];
    signal?: AbortSignal;
    /** The archive's size as it is written. */
    onProgress?: (bytes: number) => void;
    /** Bytes of tar's stream so far: about the tree's size read, for a percent and an ETA. */
    onInput?: (bytes: number) => void;
    /** Exact member names to leave out, one per line (media files: snapshot/media-index.ts). */
    excludeFile?: string;
  } = {},
): Promise<ArchiveInfo> {
  const [comp, ...compArgs] = compressorArgv(format, opts.level, format === 'tar.gz' && (await hasCommand('pigz')));
  const partial = `${out}.partial`;
  const common = { cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false } as const;
  // The last process writes the file itself (its stdout is the file), so the archive's bytes never pass through the
  // worker's heap; they are hashed afterwards, off the main thread, from the page cache (see hash-files.ts).
  const file = await open(partial, 'w', 0o600);
  // Numeric owners, modes, hard links, ns mtimes and the kept xattrs (user.*, security.capability; ACLs as their
  // system.posix_acl_* xattrs, numeric, unlike tar 1.34's --acls): see KEPT_XATTRS in remote/rsync.ts. atime and
  // ctime are never restored: not stored.
  const base = basename(snapshotDir);
  // The files that describe the rest come first (a partial restore may stop once it has what it needs: see
  // selection.ts), then the tree in name order without them.
  const first = (await Promise.all(LEADING_FILES.map(async (f) => ((await lstat(join(snapshotDir, f)).catch(() => null))?.isFile() ? `${base}/${f}` : undefined)))).filter((f): f is string => f !== undefined);
  const tar = execa(
    ...dieWithWorker('tar', [
      '-C', dirname(snapshotDir), '--sort=name', '--format=posix', '--pax-option=delete=atime,delete=ctime', '--numeric-owner', '--xattrs',
      ...['user.*', 'security.capability', 'system.posix_acl_access', 'system.posix_acl_default'].map((x) => `--xattrs-include=${x}`),
      '-cf', '-',
      '--no-recursion', ...first, '--recursion',
      '--anchored', '--no-wildcards', ...first.map((f) => `--exclude=${f}`), ...(opts.excludeFile ? ['--no-unquote', '-X', opts.excludeFile] : []),
      '--', base,
    ]),
    { ...common, stdin: 'ignore' },
  );
  const encrypting = Boolean(opts.recipients?.length);
  // execa hands a number to spawn as a file descriptor; its types only list 3-9.
  const toFile = { ...common, stdout: file.fd as 3 } as const;
  // Progress in bytes: the file's size as the last process writes it.
  let written = 0;
  const reportSize = (size: number) => {
    if (size === written) return;
    written = size;
    opts.onProgress?.(size);
  };
  const stopWatch = watchGrowth(partial, reportSize, 500);
  try {
    const compressor = execa(...dieWithWorker(comp!, compArgs), encrypting ? common : toFile);
    tar.stdout.pipe(compressor.stdin);
    let read = 0;
    if (opts.onInput) tar.stdout.on('data', (chunk: Buffer) => opts.onInput!((read += chunk.length)));
    // age after compression (ciphertext does not compress); the hash and size are those of the stored bytes.
    const encryptor = encrypting ? execa(...dieWithWorker(...encryptArgv(opts.recipients!)), toFile) : undefined;
    if (encryptor) compressor.stdout!.pipe(encryptor.stdin);
    await Promise.all([tar, compressor, ...(encryptor ? [encryptor] : [])]);
    stopWatch();
    await file.close();
    // The checkpoints come from the same pass as the hash (a worker thread): no byte is read twice.
    const every = checkpointDistance((await stat(partial)).size);
    const { sha256, size, prefixes } = await sha256File(partial, { every, ...(opts.signal ? { signal: opts.signal } : {}) });
    reportSize(size);
    await rename(partial, out);
    return { path: out, format, sha256, size, ...(encrypting ? { encryption: 'age' as const } : {}), checkpoints: { every, at: prefixes ?? [] } };
  } catch (err) {
    stopWatch();
    await file.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw err;
  }
}

/** The argv that lists or extracts an archive of this format with GNU tar. */
export function tarDecompressFlag(format: ArchiveFormat): string {
  return format === 'tar.zst' ? '--zstd' : '--gzip';
}

async function hasCommand(name: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', name], { reject: false });
  return r.exitCode === 0;
}
