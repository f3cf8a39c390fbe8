// SHA-256 of files, off the worker's heap: the bytes are read and hashed in worker threads (one per core, each with
// its own small V8 heap and one reused read buffer). Hashing on the main thread through streams allocated a buffer
// per chunk, so V8 kept collecting garbage, and with a worker's few hundred MB of live objects each collection cost
// more than the hashing itself. Threads use OpenSSL like the main thread would (SHA-NI where the CPU has it: about
// 3× coreutils' sha256sum), take no argv limits, and name escaping never comes up: paths travel as strings.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** `prefixes`: with `every`, the SHA-256 of the file's first k·every bytes for k = 1, 2, … (see stored-checkpoints.ts). */
export type FileDigest = { sha256: string; size: number; prefixes?: string[] } | { error: { code?: string; message: string } };

export interface HashFilesOptions {
  signal?: AbortSignal;
  /** Files and bytes done so far: once per file as its batch completes, and while large files are being read. */
  onProgress?: (files: number, bytes: number) => void;
  /** Worker threads (default: the cores Node may use). */
  threads?: number;
  /** Also note each file's prefix hashes every this many bytes (a multiple of 1 MiB). */
  every?: number;
}

/** A batch is a run of consecutive files: few messages for many small files, one big file on its own. */
const BATCH_FILES = 256;
const BATCH_BYTES = 64 * 2 ** 20;

// Plain JavaScript, run with `eval: true`, so it loads the same way under node, tsx and vitest. A file that is not a
// regular file (any more) is an error, never opened for reading: O_NOFOLLOW refuses a symlink, O_NONBLOCK keeps a
// fifo from blocking the open, fstat refuses the rest.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const CHUNK = 1 << 20;
const REPORT_EVERY = 32 * 2 ** 20;
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const buf = Buffer.allocUnsafe(CHUNK);
parentPort.on('message', ({ paths, every }) => {
  const results = [];
  let unreported = 0;
  for (const path of paths) {
    let fd = -1;
    try {
      fd = fs.openSync(path, FLAGS);
      if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error('not a regular file: ' + path), { code: 'ENOTREG' });
      const hash = createHash('sha256');
      const prefixes = every ? [] : undefined;
      let size = 0;
      // With \`every\` (a multiple of CHUNK), a read never crosses a checkpoint: it ends where the next one starts.
      for (let n; (n = fs.readSync(fd, buf, 0, every ? Math.min(CHUNK, every - (size % every)) : CHUNK, null)) > 0; ) {
        hash.update(n === CHUNK ? buf : buf.subarray(0, n));
        size += n;
        if (prefixes && size % every === 0) prefixes.push(hash.copy().digest('hex'));
        unreported += n;
        if (unreported >= REPORT_EVERY) {
          parentPort.postMessage({ progress: unreported });
          unreported = 0;
        }
      }
      results.push(prefixes ? { sha256: hash.digest('hex'), size, prefixes } : { sha256: hash.digest('hex'), size });
    } catch (err) {
      results.push({ error: { code: err.code, message: err.message } });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
  parentPort.postMessage({ results });
});
`;

interface Batch {
  start: number;
  paths: string[];
  bytes: number;
}

/**
 * SHA-256 and size of each file (absolute paths; `size` is the expected size, used to balance the threads), in input
 * order. A file that cannot be read yields `{ error }` instead; the caller decides what that means.
 */
export async function hashFiles(files: ReadonlyArray<{ path: string; size: number }>, opts: HashFilesOptions = {}): Promise<FileDigest[]> {
  opts.signal?.throwIfAborted();
  const results: FileDigest[] = new Array(files.length);
  // Largest batches first, so one big file does not start last and leave the other threads idle.
  const queue = batches(files).sort((a, b) => b.bytes - a.bytes);
  if (queue.length === 0) return results;
  const progress = progressCounter(opts.onProgress);
  const hashers = Array.from({ length: Math.min(opts.threads ?? availableParallelism(), queue.length) }, () => startHasher(opts.signal, opts.every));
  let next = 0;
  try {
    await Promise.all(
      hashers.map(async (hasher, slot) => {
        for (let batch = queue[next++]; batch; batch = queue[next++]) {
          const digests = await hasher.hash(batch.paths, (bytes) => progress.reading(slot, bytes));
          digests.forEach((d, i) => {
            results[batch.start + i] = d;
            progress.fileDone(slot, 'size' in d ? d.size : 0);
          });
          progress.batchDone(slot);
        }
      }),
    );
  } finally {
    await Promise.all(hashers.map((h) => h.close()));
  }
  return results;
}

/** One file's SHA-256 and size (and prefix hashes with `every`); throws when it cannot be read. */
export async function sha256File(path: string, opts: { signal?: AbortSignal; onBytes?: (bytes: number) => void; every?: number } = {}): Promise<{ sha256: string; size: number; prefixes?: string[] }> {
  const [digest] = await hashFiles([{ path, size: 0 }], { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.every ? { every: opts.every } : {}), threads: 1, onProgress: (_f, bytes) => opts.onBytes?.(bytes) });
  return digestOrThrow(digest!, path);
}

/** The digest, or the read error as an Error carrying its errno code (so EACCES is PermissionDenied, as before). */
export function digestOrThrow(digest: FileDigest, path: string): { sha256: string; size: number; prefixes?: string[] } {
  if ('sha256' in digest) return digest;
  const { code, message } = digest.error;
  throw Object.assign(new Error(`cannot hash ${path}: ${message}`), { code, path });
}

function batches(files: ReadonlyArray<{ path: string; size: number }>): Batch[] {
  const out: Batch[] = [];
  let current: Batch | undefined;
  files.forEach(({ path, size }, i) => {
    if (!current || current.paths.length >= BATCH_FILES || current.bytes + size > BATCH_BYTES) {
      current = { start: i, paths: [], bytes: 0 };
      out.push(current);
    }
    current.paths.push(path);
    current.bytes += size;
  });
  return out;
}

/** Files done and bytes read, counting the bytes of files still being read; bytes never go backwards. */
function progressCounter(onProgress: HashFilesOptions['onProgress']) {
  const inFlight = new Map<number, number>();
  let files = 0;
  let doneBytes = 0;
  let reported = 0;
  const report = () => {
    let pending = 0;
    for (const b of inFlight.values()) pending += b;
    reported = Math.max(reported, doneBytes + pending);
    onProgress?.(files, reported);
  };
  return {
    reading(slot: number, bytes: number) {
      inFlight.set(slot, (inFlight.get(slot) ?? 0) + bytes);
      report();
    },
    fileDone(slot: number, bytes: number) {
      files += 1;
      doneBytes += bytes;
      // This batch's own bytes are now counted as done.
      inFlight.set(slot, Math.max(0, (inFlight.get(slot) ?? 0) - bytes));
      report();
    },
    batchDone(slot: number) {
      inFlight.delete(slot);
    },
  };
}

interface Hasher {
  hash(paths: string[], onBytes: (bytes: number) => void): Promise<FileDigest[]>;
  close(): Promise<void>;
}

/** One worker thread; one batch at a time. An abort terminates the thread and fails the batch in flight. */
function startHasher(signal: AbortSignal | undefined, every: number | undefined): Hasher {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  let pending: { resolve(d: FileDigest[]): void; reject(e: unknown): void; onBytes(b: number): void } | undefined;
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    pending?.reject(failure);
    pending = undefined;
  };
  const onAbort = () => {
    fail(signal?.reason);
    void worker.terminate();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  worker.on('message', (m: { progress?: number; results?: FileDigest[] }) => {
    if (m.progress) pending?.onBytes(m.progress);
    if (m.results) {
      pending?.resolve(m.results);
      pending = undefined;
    }
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`hashing thread exited (code ${code})`)));
  return {
    hash(paths, onBytes) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending = { resolve, reject, onBytes };
        worker.postMessage({ paths, every });
      });
    },
    async close() {
      signal?.removeEventListener('abort', onAbort);
      await worker.terminate();
    },
  };
}
