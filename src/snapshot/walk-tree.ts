// A directory tree's entries, listed in a worker thread: synchronous readdir and lstat there cost a few µs per file,
// where one awaited lstat per file on the main thread cost 30 µs and more (a promise and a BigIntStats each, collected
// in the worker's big heap). For a million files that is seconds instead of half a minute, and the main thread stays
// free for heartbeats (a hung file system stalls the listing, not the worker).
import { Worker } from 'node:worker_threads';

export const DIRECTORY = 0;
export const FILE = 1;
export const SYMLINK = 2;
export type EntryKind = typeof DIRECTORY | typeof FILE | typeof SYMLINK;

/** Entries in UTF-8 byte order of their paths (so a directory comes before what it holds); other types are left out. */
export interface TreeListing {
  paths: string[];
  kinds: EntryKind[];
  /** Regular files only (0 for the rest): size and `dev:ino:size:mtimeNs` (see fileIdentity in manifest.ts). */
  sizes: number[];
  identities: string[];
  /** Regular files modified at or after `racyFromNs`. */
  racy: boolean[];
}

// Plain JavaScript, run with `eval: true` (loads the same way under node, tsx and vitest).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { root, racyFromNs } = workerData;
const racyFrom = BigInt(racyFromNs);
// UTF-8 byte order without encoding: UTF-16 order with surrogates (code points above U+FFFF) moved past U+FFFF.
const rank = (u) => (u >= 0xd800 && u <= 0xdfff ? u + 0x2000 : u >= 0xe000 ? u - 0x800 : u);
function byteOrder(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}
try {
  const found = [];
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop();
    for (const name of fs.readdirSync(rel ? root + '/' + rel : root)) {
      const path = rel ? rel + '/' + name : name;
      const st = fs.lstatSync(root + '/' + path, { bigint: true });
      if (st.isDirectory()) {
        found.push({ path, kind: 0 });
        stack.push(path);
      } else if (st.isFile()) {
        found.push({ path, kind: 1, size: Number(st.size), identity: st.dev + ':' + st.ino + ':' + st.size + ':' + st.mtimeNs, racy: st.mtimeNs >= racyFrom });
      } else if (st.isSymbolicLink()) found.push({ path, kind: 2 });
    }
  }
  found.sort((a, b) => byteOrder(a.path, b.path));
  parentPort.postMessage({
    paths: found.map((e) => e.path),
    kinds: found.map((e) => e.kind),
    sizes: found.map((e) => e.size ?? 0),
    identities: found.map((e) => e.identity ?? ''),
    racy: found.map((e) => e.racy === true),
  });
} catch (err) {
  parentPort.postMessage({ error: { code: err.code, message: err.message, path: err.path } });
}
`;

/** Every directory, regular file and symlink under `root` (symlinks are never followed). */
export async function walkTree(root: string, opts: { racyFromNs: bigint; signal?: AbortSignal }): Promise<TreeListing> {
  opts.signal?.throwIfAborted();
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { root, racyFromNs: String(opts.racyFromNs) } });
  const onAbort = () => void worker.terminate();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await new Promise<TreeListing>((resolve, reject) => {
      worker.once('message', (m: TreeListing | { error: { code?: string; message: string; path?: string } }) => {
        if ('error' in m) reject(Object.assign(new Error(m.error.message), m.error));
        else resolve(m);
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(opts.signal?.aborted ? opts.signal.reason : new Error(`listing thread exited (code ${code})`)));
    });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}
