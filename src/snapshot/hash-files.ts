// SHA-256 of files, off the main thread's heap: the bytes are read and hashed in worker threads or, in the Temporal
// worker (hashInProcesses), in small child processes (bare `node -e`): one per core, each with one reused read
// buffer; a little work is hashed in place. Hashing on the main thread through streams allocated a buffer per chunk,
// so V8 kept collecting garbage, and with a worker's few hundred MB of live objects each collection cost more than
// the hashing itself. Threads fixed that, but each left the worker's RSS higher (its isolate, ~12 MiB, from the
// worker's malloc arena); a process hands everything back when it exits. Both use OpenSSL like the main thread
// would (SHA-NI where the CPU has it: about 3× coreutils' sha256sum), take no argv limits, and name escaping never
// comes up: paths travel as strings.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { dieWithWorker } from '../shared/die-with-worker';

/** `prefixes`: with `every`, the SHA-256 of the file's first k·every bytes for k = 1, 2, … (see stored-checkpoints.ts). */
export type FileDigest = { sha256: string; size: number; prefixes?: string[] } | { error: { code?: string; message: string } };

export interface HashFilesOptions {
  signal?: AbortSignal;
  /** Files and bytes done so far: once per file as its batch completes, and while large files are being read. */
  onProgress?: (files: number, bytes: number) => void;
  /** Hashing threads or processes (default: the cores Node may use). */
  hashers?: number;
  /** Also note each file's prefix hashes every this many bytes (a multiple of 1 MiB). */
  every?: number;
}

/** A batch is a run of consecutive files: few messages for many small files, one big file on its own. */
const BATCH_FILES = 256;
const BATCH_BYTES = 64 * 2 ** 20;

/** What hashPaths needs from outside: passed in, so that its source text alone runs in a hashing process. */
interface HashDeps {
  fs: typeof import('node:fs');
  createHash: typeof import('node:crypto').createHash;
  /** The one read buffer, reused for every file (1 MiB). */
  buf: Buffer;
  onBytes: (bytes: number) => void;
}

/**
 * SHA-256 and size of each path, read synchronously through one reused buffer. A file that is not a regular file
 * (any more) is an error, never opened for reading: O_NOFOLLOW refuses a symlink, O_NONBLOCK keeps a fifo from
 * blocking the open, fstat refuses the rest. With `every` (a multiple of the buffer's size) a read never crosses a
 * checkpoint, and the prefix hashes are noted. Self-contained (only its parameters and JavaScript's globals): the
 * hashers run its source text, the worker runs it directly for small work. No nested functions: tsx (keepNames)
 * would wrap them in a `__name()` helper that the hashers' source does not have.
 */
function hashPaths(paths: string[], every: number | undefined, { fs, createHash, buf, onBytes }: HashDeps): FileDigest[] {
  const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
  const results: FileDigest[] = [];
  for (const path of paths) {
    let fd = -1;
    try {
      fd = fs.openSync(path, flags);
      if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`not a regular file: ${path}`), { code: 'ENOTREG' });
      const hash = createHash('sha256');
      const prefixes: string[] | undefined = every ? [] : undefined;
      let size = 0;
      for (let n; (n = fs.readSync(fd, buf, 0, every ? Math.min(buf.length, every - (size % every)) : buf.length, null)) > 0; ) {
        hash.update(n === buf.length ? buf : buf.subarray(0, n));
        size += n;
        if (prefixes && every && size % every === 0) prefixes.push(hash.copy().digest('hex'));
        onBytes(n);
      }
      results.push(prefixes ? { sha256: hash.digest('hex'), size, prefixes } : { sha256: hash.digest('hex'), size });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      results.push({ error: { ...(e.code ? { code: e.code } : {}), message: e.message } });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
  return results;
}

// A hasher's body: batches in, results out, progress every 32 MiB. `post` and the message hook are the thread's or
// the process's (below).
const HASHER_BODY = `
const hashPaths = ${hashPaths.toString()};
const deps = { fs: require('node:fs'), createHash: require('node:crypto').createHash, buf: Buffer.allocUnsafe(1 << 20), onBytes };
let unreported = 0;
function onBytes(n) {
  unreported += n;
  if (unreported >= 32 * 2 ** 20) {
    post({ progress: unreported });
    unreported = 0;
  }
}
function onBatch({ paths, every }) {
  unreported = 0;
  post({ results: hashPaths(paths, every, deps) });
}
`;
/** A worker thread: starts in ~15 ms; its isolate comes from, and stays in, the process's memory. */
const THREAD_SOURCE = `const { parentPort } = require('node:worker_threads');
const post = (m) => parentPort.postMessage(m);
${HASHER_BODY}
parentPort.on('message', onBatch);`;
/** A bare `node -e` (no module loading: ~50 ms to start) that hands everything back when it exits; the worker gone
 * (channel closed), it exits. */
const PROCESS_SOURCE = `const post = (m) => process.send(m);
${HASHER_BODY}
process.on('disconnect', () => process.exit(0));
process.on('message', onBatch);`;

let inProcesses = false;
/**
 * Where hashing runs from now on: in processes (the worker: it lives for months, and threads' memory stayed in it,
 * ~12 MiB each, after they ended), else in threads (a command or a task that exits when done; the default).
 */
export function hashInProcesses(on = true): void {
  inProcesses = on;
}

/**
 * Up to this many files and less than this in all is hashed in place, synchronously (one reused buffer, a few ms):
 * a thread or a process costs more. More files could hold the event loop (and heartbeats) on a slow disk.
 */
const IN_PLACE_FILES = 64;
const IN_PLACE_BYTES = 8 * 2 ** 20;
let inPlaceBuffer: Buffer | undefined;

interface Batch {
  start: number;
  paths: string[];
  bytes: number;
}

/**
 * SHA-256 and size of each file (absolute paths; `size` is the expected size, used to balance the processes), in input
 * order. A file that cannot be read yields `{ error }` instead; the caller decides what that means.
 */
export async function hashFiles(files: ReadonlyArray<{ path: string; size: number }>, opts: HashFilesOptions = {}): Promise<FileDigest[]> {
  opts.signal?.throwIfAborted();
  const results: FileDigest[] = new Array(files.length);
  // Largest batches first, so one big file does not start last and leave the other processes idle.
  const queue = batches(files).sort((a, b) => b.bytes - a.bytes);
  if (queue.length === 0) return results;
  const progress = progressCounter(opts.onProgress);
  if (files.length <= IN_PLACE_FILES && queue.reduce((n, b) => n + b.bytes, 0) < IN_PLACE_BYTES) return hashInPlace(files, opts, results);
  const hashers = Array.from({ length: Math.min(opts.hashers ?? availableParallelism(), queue.length) }, () => startHasher(opts.signal, opts.every));
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

/** Small work in the worker itself, synchronously: no process to start, and too little to matter to its heap. */
function hashInPlace(files: ReadonlyArray<{ path: string; size: number }>, opts: HashFilesOptions, results: FileDigest[]): FileDigest[] {
  let bytes = 0;
  const deps = { fs, createHash, buf: (inPlaceBuffer ??= Buffer.allocUnsafe(1 << 20)), onBytes: (n: number) => (bytes += n) };
  files.forEach(({ path }, i) => {
    opts.signal?.throwIfAborted();
    results[i] = hashPaths([path], opts.every, deps)[0]!;
    opts.onProgress?.(i + 1, bytes);
  });
  return results;
}

/** One file's SHA-256 and size (and prefix hashes with `every`); throws when it cannot be read. */
export async function sha256File(path: string, opts: { signal?: AbortSignal; onBytes?: (bytes: number) => void; every?: number } = {}): Promise<{ sha256: string; size: number; prefixes?: string[] }> {
  const size = (await fs.promises.stat(path).catch(() => undefined))?.size ?? 0; // decides where it is hashed
  const [digest] = await hashFiles([{ path, size }], { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.every ? { every: opts.every } : {}), hashers: 1, onProgress: (_f, bytes) => opts.onBytes?.(bytes) });
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

/** One hashing thread or process; one batch at a time. An abort ends it and fails the batch in flight. */
function startHasher(signal: AbortSignal | undefined, every: number | undefined): Hasher {
  const channel = inProcesses ? processChannel() : threadChannel();
  let pending: { resolve(d: FileDigest[]): void; reject(e: unknown): void; onBytes(b: number): void } | undefined;
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    pending?.reject(failure);
    pending = undefined;
  };
  const onAbort = () => {
    fail(signal?.reason);
    channel.kill();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  channel.onMessage((m) => {
    if (m.progress) pending?.onBytes(m.progress);
    if (m.results) {
      pending?.resolve(m.results);
      pending = undefined;
    }
  }, fail);
  return {
    hash(paths, onBytes) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending = { resolve, reject, onBytes };
        channel.send({ paths, every });
      });
    },
    async close() {
      signal?.removeEventListener('abort', onAbort);
      if (pending) channel.kill(); // another hasher failed: this one's batch (a big file, maybe) is not wanted
      await channel.close();
    },
  };
}

type HasherMessage = { progress?: number; results?: FileDigest[] };
interface Channel {
  send(batch: { paths: string[]; every: number | undefined }): void;
  /** Messages, and the end (an error, or an exit before close) as a failure. */
  onMessage(on: (m: HasherMessage) => void, fail: (err: unknown) => void): void;
  kill(): void;
  close(): Promise<void>;
}

function threadChannel(): Channel {
  const worker = new Worker(THREAD_SOURCE, { eval: true });
  return {
    send: (batch) => worker.postMessage(batch),
    onMessage(on, fail) {
      worker.on('message', on);
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`hashing thread exited (code ${code})`)));
    },
    kill: () => void worker.terminate(),
    close: async () => void (await worker.terminate()),
  };
}

function processChannel(): Channel {
  const child = spawn(...dieWithWorker(process.execPath, ['-e', PROCESS_SOURCE]), {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' }, // the worker's (a test runner's loaders, heap limits) are not for this
  });
  // `exit`: after disconnect() Node never reports `close` for a child with only an IPC pipe.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    send: (batch) => child.send(batch),
    onMessage(on, fail) {
      child.on('message', on);
      child.on('error', fail);
      child.on('exit', (code, sig) => fail(new Error(`hashing process exited (${sig ?? `code ${code}`})`)));
    },
    kill: () => child.kill('SIGKILL'),
    async close() {
      if (child.connected) child.disconnect(); // it exits on its own
      await exited;
    },
  };
}
