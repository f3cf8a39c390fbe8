// A directory tree's entries, listed by GNU find in a child process: its readdir and lstat cost a few µs per file and
// no memory in the worker, which only parses one NUL-terminated record per entry. An awaited lstat per file on the main
// thread cost 30 µs and more (a promise and a BigIntStats each, collected in the worker's big heap); a listing thread
// was as fast but its own heap and objects raised the worker's peak by about 25 MiB for 16 000 files. A hung file
// system stalls find, not the worker's heartbeats.
import { execa } from 'execa';
import { dieWithWorker } from '../shared/die-with-worker';

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

const KINDS: Record<string, EntryKind> = { d: DIRECTORY, f: FILE, l: SYMLINK };
/** type, st_dev, inode, size, mtime as `<s>.<10 digits>`, the path below the root; never following symlinks. */
const PRINTF = '%y %D %i %s %T@ %P\\0';
const RECORD = /^([a-zA-Z]) (\d+) (\d+) (\d+) (-?\d+)\.(\d+) ([\s\S]+)$/;

/** Every directory, regular file and symlink under `root` (symlinks are never followed). */
export async function walkTree(root: string, opts: { racyFromNs: bigint; signal?: AbortSignal }): Promise<TreeListing> {
  opts.signal?.throwIfAborted();
  const child = execa(...dieWithWorker('find', ['-P', root, '-mindepth', '1', '-printf', PRINTF]), {
    buffer: { stdout: false, stderr: true },
    stdin: 'ignore',
    reject: false,
    env: { LC_ALL: 'C' }, // its complaints in the words findFailure reads
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const found: Array<{ path: string; kind: EntryKind; size: number; identity: string; racy: boolean }> = [];
  let rest = Buffer.alloc(0);
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    let data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    for (let end = data.indexOf(0); end !== -1; end = data.indexOf(0)) {
      const entry = parseRecord(data.toString('utf8', 0, end), opts.racyFromNs);
      if (entry) found.push(entry);
      data = data.subarray(end + 1);
    }
    rest = Buffer.from(data); // a copy: the chunk is not kept
  }
  const res = await child;
  if (opts.signal?.aborted) throw opts.signal.reason;
  if (res.exitCode !== 0 || rest.length > 0) throw findFailure(root, res.exitCode, String(res.stderr ?? ''), (res as { code?: string }).code);
  found.sort((a, b) => byteOrder(a.path, b.path));
  return {
    paths: found.map((e) => e.path),
    kinds: found.map((e) => e.kind),
    sizes: found.map((e) => e.size),
    identities: found.map((e) => e.identity),
    racy: found.map((e) => e.racy),
  };
}

function parseRecord(text: string, racyFromNs: bigint): { path: string; kind: EntryKind; size: number; identity: string; racy: boolean } | undefined {
  const m = RECORD.exec(text);
  if (!m) throw new Error(`unexpected line from find: ${JSON.stringify(text.slice(0, 200))}`);
  const [, type, dev, ino, size, seconds, fraction, path] = m as unknown as string[];
  const kind = KINDS[type!];
  if (kind === undefined) return undefined; // sockets, fifos, devices
  if (kind !== FILE) return { path: path!, kind, size: 0, identity: '', racy: false };
  // find prints tv_sec, then tv_nsec (never negative) zero-padded to ten digits: the first nine are the nanoseconds.
  const mtimeNs = BigInt(seconds!) * 1_000_000_000n + BigInt(fraction!.slice(0, 9).padEnd(9, '0'));
  return { path: path!, kind, size: Number(size), identity: identityOf(dev!, ino!, size!, mtimeNs), racy: mtimeNs >= racyFromNs };
}

/** `dev:ino:size:mtimeNs`: the one spelling of a file's identity (fileIdentity in manifest.ts uses it too). */
export function identityOf(dev: bigint | string, ino: bigint | string, size: bigint | string, mtimeNs: bigint | string): string {
  return `${dev}:${ino}:${size}:${mtimeNs}`;
}

/** find's complaint as an Error carrying the errno code its words stand for (EACCES is PermissionDenied, as before). */
function findFailure(root: string, exitCode: number | undefined, stderr: string, spawnCode?: string): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  const code = spawnCode ?? (/Permission denied/.test(text) ? 'EACCES' : /No such file or directory/.test(text) ? 'ENOENT' : /Input\/output error/.test(text) ? 'EIO' : undefined);
  return Object.assign(new Error(`listing ${root} failed (find exit ${exitCode ?? '?'}): ${text || 'incomplete output'}`), { code, path: root });
}

// UTF-8 byte order without encoding: UTF-16 order with surrogates (code points above U+FFFF) moved past U+FFFF.
const rank = (u: number) => (u >= 0xd800 && u <= 0xdfff ? u + 0x2000 : u >= 0xe000 ? u - 0x800 : u);
export function byteOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}
