// tar.zst (zstd -T0, all cores) or tar.gz (pigz when present), streamed: tar → compressor (→ age) → file through OS
// pipes, never through the worker, then hashed (with the prefix hashes a selective restore checks:
// stored-checkpoints.ts).
import { lstat, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import type { ArchiveFormat } from './naming';
import { dieWithWorker } from '../shared/die-with-worker';
import { encryptArgv } from './encryption';
import { sha256File } from './hash-files';
import { watchGrowth } from '../shared/bounded';
import { sinkFailure, startSink, type Sink } from '../shared/sink-process';
import { checkpointDistance, type StoredCheckpoints } from './stored-checkpoints';

/** Written first, in this order, when present. */
const LEADING_FILES = ['manifest.sha256', 'metadata.yml', 'media.json'];
/** tar reports a checkpoint every this many records (10 KiB each: about 10 MiB) on stderr: the input progress. */
const CHECKPOINT_RECORDS = 1024;
const RECORD_BYTES = 10240;

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
    /** Bytes of tar's stream so far (tar's checkpoints, every 10 MiB): about the tree's size read, for a percent and an ETA. */
    onInput?: (bytes: number) => void;
    /** Exact member names to leave out, one per line (media files: snapshot/media-index.ts). */
    excludeFile?: string;
  } = {},
): Promise<ArchiveInfo> {
  const [comp, ...compArgs] = compressorArgv(format, opts.level, format === 'tar.gz' && (await hasCommand('pigz')));
  const partial = `${out}.partial`;
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
  const encrypting = Boolean(opts.recipients?.length);
  // Progress in bytes: the file's size as the last process writes it.
  let written = 0;
  const reportSize = (size: number) => {
    if (size === written) return;
    written = size;
    opts.onProgress?.(size);
  };
  const stopWatch = watchGrowth(partial, reportSize, 500);
  const stages = new AbortController(); // one failed stage stops the others
  const signal = opts.signal ? AbortSignal.any([opts.signal, stages.signal]) : stages.signal;
  const sinks: Sink[] = [];
  try {
    // Started last to first, each with the next one's pipe as its stdout: the bytes go tar → compressor (→ age, after
    // compression: ciphertext does not compress) → file without passing through the worker.
    const encryptor = encrypting ? await startSink(encryptArgv(opts.recipients!).flat() as [string, ...string[]], file.fd, signal) : undefined;
    if (encryptor) sinks.push(encryptor);
    const compressor = await startSink([comp!, ...compArgs], encryptor?.stdin ?? file.fd, signal);
    sinks.push(compressor);
    encryptor?.release();
    const tar = execa(
      ...dieWithWorker('tar', [
        '-C', dirname(snapshotDir), '--sort=name', '--format=posix', '--pax-option=delete=atime,delete=ctime', '--numeric-owner', '--xattrs',
        ...['user.*', 'security.capability', 'system.posix_acl_access', 'system.posix_acl_default'].map((x) => `--xattrs-include=${x}`),
        `--checkpoint=${CHECKPOINT_RECORDS}`, '--checkpoint-action=echo=%u',
        '-cf', '-',
        '--no-recursion', ...first, '--recursion',
        '--anchored', '--no-wildcards', ...first.map((f) => `--exclude=${f}`), ...(opts.excludeFile ? ['--no-unquote', '-X', opts.excludeFile] : []),
        '--', base,
      ]),
      { cancelSignal: signal, forceKillAfterDelay: 5000, buffer: false, reject: false, stdin: 'ignore', stdout: compressor.stdin },
    );
    const said = tarStderr(opts.onInput);
    tar.stderr.on('data', said.push);
    const tarResult = await tar;
    compressor.release(); // only now: execa counts an earlier close of tar's stdout as tar's failure
    if (tarResult.exitCode !== 0) stages.abort();
    const results = [{ name: comp!, result: await compressor.done }, ...(encryptor ? [{ name: 'age', result: await encryptor.done }] : [])];
    opts.signal?.throwIfAborted();
    // A sink that exited with an error (a full disk) explains tar's broken pipe; one killed by a signal was stopped
    // because tar failed, unless tar did not.
    const sinkFailed = results.find((x) => x.result.code !== 0 && x.result.code !== null) ?? (tarResult.exitCode === 0 ? results.find((x) => x.result.code !== 0) : undefined);
    if (sinkFailed) throw sinkFailure(`${sinkFailed.name} failed while writing the archive`, sinkFailed.result);
    if (tarResult.exitCode !== 0) throw new Error(`tar failed while archiving ${snapshotDir} (exit ${tarResult.exitCode ?? tarResult.signal}): ${said.text() || 'no message'}`);
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
    // Whatever failed, no sink may wait on a pipe end we still hold, or write on into the file removed below.
    stages.abort();
    for (const sink of sinks) sink.release();
    await Promise.all(sinks.map((sink) => sink.done));
    await file.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw err;
  }
}

/** tar's stderr: checkpoint lines become input progress, the rest is kept (its end) for a failure's message. */
function tarStderr(onInput?: (bytes: number) => void): { push: (d: Buffer) => void; text: () => string } {
  let partial = '';
  let kept = '';
  return {
    push: (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const checkpoint = /^(?:\S*\/)?tar: (\d+)$/.exec(line); // tar names itself by the path it was started with
        if (checkpoint) onInput?.(Number(checkpoint[1]) * RECORD_BYTES); // %u: records so far
        else kept = `${kept}${line}\n`.slice(-8192);
      }
    },
    text: () => `${kept}${partial}`.trim(),
  };
}

/** The argv that lists or extracts an archive of this format with GNU tar. */
export function tarDecompressFlag(format: ArchiveFormat): string {
  return format === 'tar.zst' ? '--zstd' : '--gzip';
}

async function hasCommand(name: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', name], { reject: false });
  return r.exitCode === 0;
}
