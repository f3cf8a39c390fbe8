// Safe, one-pass extraction of a snapshot archive from storage, which we do not trust. The stored bytes stream
// through a SHA-256 (checked against the record at the end), age when encrypted, the decompressor, then node-tar's
// parser (tar-validator.ts), and only then into GNU tar: a chunk reaches GNU tar once every header in it has been
// checked, so nothing lands outside `<targetDir>/<snapshot>` or through a link. Each file is hashed as it goes by.
// Afterwards the extracted tree is compared with the validated listing (a header the two parsers read differently
// cannot slip anything in), and any failure, including a stored hash that turns out wrong, empties the target.
// As root, GNU tar restores numeric owners, modes (setuid, setgid, sticky), ACLs and the kept xattrs, so a
// restore pushes the tree as it was captured; the target directory is made private (0700) first, so a setuid
// file or a foreign owner in there is out of everyone else's reach. Not as root, owners are not restored.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { Parser, type ReadEntry } from 'tar';
import { LifeboatError } from '../shared/errors';
import { dieWithWorker } from '../shared/die-with-worker';
import { ageFailure, startDecryptor, type IdentitySource } from './encryption';
import type { ArchiveFormat } from './naming';
import { SelectionCut } from './selection';
import { CheckpointVerifier, type StoredCheckpoints } from './stored-checkpoints';
import { TarValidator, unsafe, type FileDigest, type Listing, type Member } from './tar-validator';

export interface ExtractResult {
  /** `<targetDir>/<top-level directory>`: the snapshot root. */
  root: string;
  /** Entries in the archive (files, directories, links). */
  entries: number;
  /** Attributes GNU tar could not set (e.g. xattrs on a filesystem without them); the files themselves are complete. */
  warnings: string[];
  /** SHA-256 and size of every regular file as it went by, by path below the root; a hard link has its target's. */
  digests: Map<string, FileDigest>;
  /** False when a partial extraction stopped before the end: the stored hash was not checked. */
  complete: boolean;
}

export interface ExtractOptions {
  format: ArchiveFormat;
  targetDir: string;
  /** Names the archive in errors (its location in storage, or its file). */
  label: string;
  signal?: AbortSignal;
  /** What the stored bytes must be; checked as they go by, and a difference is ChecksumMismatch. */
  stored?: { sha256: string; size: number };
  /** The stored bytes are age ciphertext, decrypted on the way with this identity. */
  identity?: IdentitySource;
  /** Stored bytes read so far. */
  onBytes?: (bytes: number) => void;
  /**
   * A partial extraction (needs `stored`): GNU tar gets an end once every pattern's entries (paths below the root,
   * see selection.ts) and the `always` files have gone by, and reading stops at the next of the signed checkpoints
   * past the stored bytes read by then, which proves everything GNU tar got. The whole hash is then not checked.
   */
  select?: { patterns: string[]; always: string[]; checkpoints: StoredCheckpoints };
}

/** An archive file on disk (already checked, and plaintext), extracted the same way as a stream. */
export async function extractArchive(archive: string, format: ArchiveFormat, targetDir: string, opts: { signal?: AbortSignal } = {}): Promise<ExtractResult> {
  return extractStream(createReadStream(archive), { format, targetDir, label: archive, ...opts });
}

/** Stored bytes → (age) → decompressor → checked headers → GNU tar, in one pass; the source is read to its end. */
export async function extractStream(source: Readable, opts: ExtractOptions): Promise<ExtractResult> {
  const { targetDir, signal } = opts;
  const stop = new AbortController(); // ends the processes at the first problem
  const cancelSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let existed: boolean | undefined;
  let decryptor: Decryptor | undefined;
  try {
    existed = await assertEmptyTarget(targetDir);
    decryptor = opts.identity ? await startDecryptor(opts.identity, { cancelSignal }) : undefined; // a missing identity fails before any read
    await mkdir(targetDir, { recursive: true, mode: 0o700 });
    await chmod(targetDir, 0o700); // an existing empty directory too: what lands inside keeps setuid bits and owners
    return await runPipeline(source, opts, { stop, cancelSignal, decryptor });
  } catch (err) {
    stop.abort(); // an early failure leaves age waiting for input
    // Never leave a half-extracted or unexpected tree behind, nor a directory the caller did not have.
    if (existed !== undefined) await (existed ? emptyDir(targetDir) : rm(targetDir, { recursive: true, force: true }));
    throw err;
  } finally {
    source.destroy(); // read to its end, or not needed any more: the storage's connection is given back
    await decryptor?.proc.catch(() => undefined);
    await decryptor?.cleanup();
  }
}

type Decryptor = Awaited<ReturnType<typeof startDecryptor>>;

async function runPipeline(source: Readable, opts: ExtractOptions, p: { stop: AbortController; cancelSignal: AbortSignal; decryptor: Decryptor | undefined }): Promise<ExtractResult> {
  const { targetDir, signal, label } = opts;
  const { stop, decryptor } = p;
  // Any process that ends in failure ends the others: nothing downstream can finish, and one upstream could wait
  // forever on a pipe nobody reads (age, once the decompressor is gone). Its own exit is the error named.
  // Once a partial extraction has sent GNU tar its end, upstream processes that die of the closed pipe must not
  // stop it, and nothing more is read from storage.
  const cutting = new AbortController();
  const stopOnFailure = <T>(proc: Promise<T>): Promise<T> => proc.catch((err: unknown) => {
    if (!cutting.signal.aborted) stop.abort();
    throw err;
  });
  const common = { cancelSignal: p.cancelSignal, forceKillAfterDelay: 5000 } as const;
  const [cmd, args] = decompressArgv(opts.format);
  const decompressor = execa(...dieWithWorker(cmd, args), { ...common, buffer: { stdout: false } });
  const tar = execa(...dieWithWorker('tar', extractTarArgs(targetDir, process.getuid?.() === 0)), common);
  const validator = new TarValidator(label);
  if (decryptor) decryptor.proc.stdout.pipe(decompressor.stdin).on('error', () => undefined);
  // Set once a partial extraction has all it needs and GNU tar has finished with it: the rest is not read.
  const cut = new AbortController();
  // The source is read to its end even when a process dies early: only the whole stored hash tells a corrupted
  // download from a bad archive. After a cut, only as far as the checkpoint that proves what was used.
  const proof = opts.select && opts.stored ? new CheckpointVerifier(opts.select.checkpoints, opts.stored, label) : undefined;
  const feeding = stopOnFailure(feed(source, decryptor ? decryptor.proc.stdin : decompressor.stdin, opts, proof && { proof, cut: cutting.signal }));
  // A refused header stops the processes; a stream that merely ended short is left to the upstream exit codes.
  const gated = proof ? gateUntil(decompressor.stdout, tar.stdin, validator, tar, new SelectionCut(opts.select!.patterns, opts.select!.always), () => cutting.abort()) : gate(decompressor.stdout, tar.stdin, validator, tar).then((refused) => (refused ? 'refused' : 'end'));
  const gating = stopOnFailure(gated).then(async (how) => {
    if (how === 'refused') stop.abort();
    if (how !== 'cut') return;
    await tar.catch(() => undefined); // GNU tar ends on the end-of-archive it was given; only then is the rest stopped
    cut.abort();
    // Nobody reads these any more: a stream left paused would keep its process from ever being reported ended.
    decompressor.stdout.destroy();
    decryptor?.proc.stdout.destroy();
    stop.abort();
  });
  const [fed, ...steps] = await Promise.allSettled([feeding, gating, stopOnFailure(tar), stopOnFailure(decompressor), ...(decryptor ? [stopOnFailure(decryptor.proc)] : [])]);
  signal?.throwIfAborted(); // a cancelled run is not a bad archive
  const partial = cut.signal.aborted; // GNU tar got an end before the archive's own
  // The source broke (network: worth a retry), or stored bytes differ from a signed checkpoint: nothing is proven.
  if (fed.status === 'rejected') throw fed.reason;
  if (!fed.value.proven) checkStored(fed.value, opts);
  // After a cut, what upstream does no longer matters: everything GNU tar got was checked, and it ended cleanly.
  const upstream = (r: PromiseSettledResult<unknown> | undefined) => (partial ? undefined : r);
  const [gatedResult, untarred, decompressed, decrypted] = steps as [PromiseSettledResult<void>, PromiseSettledResult<{ stderr: unknown }>, PromiseSettledResult<unknown>, PromiseSettledResult<unknown> | undefined];
  const failure = firstFailure([
    [upstream(decrypted), (err) => ageFailure(label, err as Parameters<typeof ageFailure>[1])],
    [upstream(decompressed), (err) => new LifeboatError('IntegrityCheckFailed', `cannot decompress ${label}: ${stderrOf(err)}`)],
    [validator.problem ? { status: 'rejected', reason: validator.problem } : undefined, (err) => err as Error],
    [gatedResult, (err) => err as Error],
    [untarred, (err) => tarError(label, err)],
  ]);
  if (failure) throw failure;
  const listing = validator.finish();
  await compareTree(label, targetDir, listing);
  return {
    root: join(targetDir, listing.root),
    entries: listing.members.size,
    warnings: tarWarnings((untarred as PromiseFulfilledResult<{ stderr: unknown }>).value.stderr),
    digests: belowRoot(validator.digests, listing.root),
    complete: !partial,
  };
}

function decompressArgv(format: ArchiveFormat): [string, string[]] {
  return format === 'tar.zst' ? ['zstd', ['-d', '-c', '-q']] : ['gzip', ['-d', '-c']];
}

/**
 * Hashes every stored byte and passes it on while the next process still reads; returns the whole hash. In a
 * partial extraction the checkpoints do the hashing (a difference throws), and once GNU tar has what it needs
 * (`cut`), everything it got came from the bytes read so far: reading goes on, unforwarded, to the checkpoint past
 * them, and stops there (`proven`).
 */
async function feed(source: Readable, sink: Writable, opts: ExtractOptions, partial?: { proof: CheckpointVerifier; cut: AbortSignal }): Promise<{ sha256: string; size: number; proven: boolean }> {
  const hash = partial ? undefined : createHash('sha256'); // one SHA-256 pass over the bytes, not two
  let size = 0;
  let open = true;
  let until: number | undefined;
  const closed = new Promise<void>((resolve) => {
    sink.on('error', () => resolve()); // EPIPE: the process died; its own exit says why
    sink.on('close', () => resolve());
  }).then(() => (open = false));
  for await (const chunk of source as AsyncIterable<Buffer>) {
    opts.signal?.throwIfAborted();
    if (partial?.cut.aborted && until === undefined) {
      until = partial.proof.until(size);
      if (open) sink.end();
    }
    if (until !== undefined && size >= until) return { sha256: '', size, proven: true };
    if (partial) partial.proof.update(chunk);
    else hash!.update(chunk);
    size += chunk.length;
    opts.onBytes?.(size);
    if (opts.stored && size > opts.stored.size) break; // already wrong: reading on proves nothing more
    if (until === undefined && open && !sink.write(chunk)) await Promise.race([once(sink, 'drain').catch(() => undefined), closed]);
  }
  if (open && until === undefined) sink.end();
  return { sha256: partial ? partial.proof.sha256 : hash!.digest('hex'), size, proven: until !== undefined && size >= until };
}

function checkStored(actual: { sha256: string; size: number }, opts: ExtractOptions): void {
  const want = opts.stored;
  if (!want || (actual.sha256 === want.sha256 && actual.size === want.size)) return;
  throw new LifeboatError(
    'ChecksumMismatch',
    `archive ${opts.label}: downloaded ${actual.size}${actual.size > want.size ? '+' : ''} bytes with SHA-256 ${actual.sha256}, but the record says ${want.size} bytes with SHA-256 ${want.sha256}`,
    { archive: opts.label, expected: want.sha256, actual: actual.sha256 },
  );
}

/**
 * node-tar parses each piece first; it goes on to GNU tar only when the parser returned true, which means every
 * entry whose header was in it has been emitted, that is checked (a header cut at a piece's end is parsed, and its
 * rest forwarded, with the next piece). Pieces are whole 512-byte blocks. Returns true when it stopped at a refusal.
 *
 * The two parsers end an archive differently: node-tar takes a block of zeros whose checksum field is not a number
 * as a null block (two of them end the archive, and it skips the rest), GNU tar only an all-zero one (it skips the
 * other and reads on). Such a block is parsed alone, and refused when node-tar took it for an end.
 */
async function gate(plain: Readable, tarIn: Writable, v: TarValidator, tar: ResultPromise): Promise<boolean> {
  const parser = new Parser({ strict: true, brotli: false, zstd: false, onReadEntry: (e: ReadEntry) => v.add(e) });
  parser.on('ignoredEntry', (e: ReadEntry) => v.fail(e.path, `has an entry type this check does not know (${String(e.header.type)}), which GNU tar would extract as a file`));
  parser.on('error', (err: Error) => v.fail('', `is not a readable tar stream: ${err.message}`));
  let ends = 0;
  parser.on('nullBlock', () => ends++);
  parser.on('eof', () => ends++);
  const ended = new Promise<void>((resolve) => parser.on('end', resolve));
  const tarGone = tar.then(() => undefined, () => undefined);
  tarIn.on('error', () => undefined); // EPIPE: tar's own exit says why
  let offset = 0;
  const pass = async (piece: Buffer, lookalike: boolean): Promise<boolean> => {
    const before = ends;
    if (!parser.write(piece)) await Promise.race([once(parser, 'drain').catch(() => undefined), v.failed]);
    if (!v.problem && lookalike && ends !== before) v.fail('', `has a block at byte ${offset} that node-tar reads as an end of archive and GNU tar does not`);
    offset += piece.length;
    if (v.problem) return false;
    if (!tarIn.write(piece)) await Promise.race([once(tarIn, 'drain').catch(() => undefined), tarGone]);
    return true;
  };
  let head = Buffer.alloc(0);
  let carry = Buffer.alloc(0);
  for await (const chunk of plain as AsyncIterable<Buffer>) {
    if (head.length < 512) {
      head = Buffer.concat([head, chunk]);
      // GNU and POSIX tar both carry "ustar" here; anything else (a nested gzip, a v7 tar) is not ours.
      if (head.length >= 512 && head.subarray(257, 262).toString('latin1') !== 'ustar') v.fail('', 'is not a GNU/POSIX tar stream');
    }
    if (v.problem) return true;
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const whole = data.length - (data.length % 512);
    carry = Buffer.from(data.subarray(whole));
    for (const [piece, lookalike] of blockPieces(data.subarray(0, whole))) if (!(await pass(piece, lookalike))) return true;
  }
  if (carry.length && !(await pass(carry, false))) return true;
  if (!v.problem && head.length < 512) v.fail('', 'is not a GNU/POSIX tar stream (too short)');
  if (!v.problem) {
    parser.end();
    await Promise.race([ended, v.failed]);
  }
  tarIn.end();
  return false;
}

/**
 * The gate of a partial extraction. node-tar gets one header block at a time and each body as it streams, so the
 * offset where every entry begins (its pax or long-name blocks included) is known. Pieces reach GNU tar as in
 * gate(), except that an entry's leading blocks wait until its header is known: when `cut` says that entry and all
 * after it are not needed, GNU tar gets an end-of-archive (two zero blocks) in its place and ends cleanly (directory
 * times set), and `onCut` lets feed() prove the stored bytes read so far (what GNU tar got, and the header that
 * decided the cut, came from them) before anything counts. Returns 'refused', 'cut', or 'end' (the whole archive
 * was needed after all).
 */
async function gateUntil(plain: Readable, tarIn: Writable, v: TarValidator, tar: ResultPromise, cut: SelectionCut, onCut: () => void): Promise<'refused' | 'cut' | 'end'> {
  const blocks = new BlockReader(plain);
  try {
    return await gateBlocks(blocks, tarIn, v, tar, cut, onCut);
  } finally {
    // Read to its end, cut, refused or failed: a decompressor output left paused would never be reported ended.
    blocks.close();
  }
}

async function gateBlocks(blocks: BlockReader, tarIn: Writable, v: TarValidator, tar: ResultPromise, cut: SelectionCut, onCut: () => void): Promise<'refused' | 'cut' | 'end'> {
  let entry: ReadEntry | undefined;
  const parser = new Parser({ strict: true, brotli: false, zstd: false, onReadEntry: (e: ReadEntry) => ((entry = e), v.add(e)) });
  parser.on('ignoredEntry', (e: ReadEntry) => v.fail(e.path, `has an entry type this check does not know (${String(e.header.type)}), which GNU tar would extract as a file`));
  parser.on('error', (err: Error) => v.fail('', `is not a readable tar stream: ${err.message}`));
  let ends = 0;
  let eof = false;
  parser.on('nullBlock', () => ends++);
  parser.on('eof', () => ((eof = true), ends++));
  const ended = new Promise<void>((resolve) => parser.on('end', resolve));
  const tarGone = tar.then(() => undefined, () => undefined);
  tarIn.on('error', () => undefined);
  const parse = async (piece: Buffer) => {
    if (!parser.write(piece)) await Promise.race([once(parser, 'drain').catch(() => undefined), v.failed]);
  };
  const forward = async (piece: Buffer) => {
    if (!tarIn.write(piece)) await Promise.race([once(tarIn, 'drain').catch(() => undefined), tarGone]);
  };
  let held: Buffer[] = []; // the current entry's blocks before its header (pax, long names)
  let heldBytes = 0;
  const hold = (piece: Buffer) => {
    held.push(piece);
    heldBytes += piece.length;
    if (heldBytes > MAX_HELD_BYTES) v.fail('', `has more than ${MAX_HELD_BYTES} bytes of extended headers before one entry`);
  };
  const release = async () => {
    for (const p of held.splice(0)) await forward(p);
    heldBytes = 0;
  };
  let offset = 0;
  for (let first = true; !eof; first = false) {
    const header = await blocks.next(512);
    if (!header) break;
    if (first && (header.length < 512 || header.subarray(257, 262).toString('latin1') !== 'ustar')) v.fail('', 'is not a GNU/POSIX tar stream');
    if (v.problem) return 'refused';
    const [before, seen] = [ends, entry];
    await parse(header);
    if (!v.problem && nullLookalike(header, 0) && ends !== before) v.fail('', `has a block at byte ${offset} that node-tar reads as an end of archive and GNU tar does not`);
    offset += header.length;
    if (v.problem) return 'refused';
    // A header of its own (not pax or long-name data) that needs nothing after it: stop before it.
    const path = entry !== seen && entry ? belowRootPath(entry.path.replace(/\/$/, ''), v.root) : undefined;
    if (entry !== seen && entry && path !== undefined && cut.passes(path)) {
      v.forget(entry.path);
      onCut();
      await forward(Buffer.alloc(1024));
      tarIn.end();
      return 'cut'; // the rest is not read: gateUntil closes the reader, so the decompressor is not left waiting
    }
    hold(header);
    // The data after this header: the entry's body (node-tar's own count), or the pax / long-name record.
    let body = entry !== seen && entry ? entry.startBlockSize : ends !== before ? 0 : 512 * Math.ceil(headerSize(header) / 512);
    while (body > 0) {
      const piece = await blocks.next(body);
      if (!piece) break;
      await parse(piece);
      offset += piece.length;
      body -= piece.length;
      if (v.problem) return 'refused';
      if (entry === seen) hold(piece);
      else await release().then(() => forward(piece)); // an entry's body streams on, after its header
      if (v.problem) return 'refused';
    }
    if (entry !== seen || ends !== before) await release();
  }
  await release();
  // Past the end of the archive (GNU tar reads no further): the padding goes through unparsed.
  for (let rest = await blocks.next(RECORD_BYTES); rest; rest = await blocks.next(RECORD_BYTES)) await forward(rest);
  if (!v.problem) {
    parser.end();
    await Promise.race([ended, v.failed]);
  }
  tarIn.end();
  return v.problem ? 'refused' : 'end';
}

/** A pax header bigger than this before one entry is not one Lifeboat wrote (it would be held in memory). */
const MAX_HELD_BYTES = 1024 * 1024;
const RECORD_BYTES = 64 * 1024;

/** `<root>/a/b` → `a/b`; the root itself → undefined (it is always needed). */
function belowRootPath(path: string, root: string | undefined): string | undefined {
  return root && path.startsWith(`${root}/`) ? path.slice(root.length + 1) : undefined;
}

/** The size field of a tar header (octal, or base-256 when its first byte has the high bit set). */
function headerSize(block: Buffer): number {
  if (block.length < 512) return 0;
  const field = block.subarray(124, 136);
  if (field[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  return parseInt(field.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8) || 0;
}

/** Whole 512-byte blocks out of a byte stream, up to a given size at a time (a short tail as it is). */
class BlockReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: Readable) {
    this.it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  close(): void {
    void this.it.return?.();
  }

  async next(max: number): Promise<Buffer | null> {
    while (this.buf.length < 512 && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    }
    if (this.buf.length === 0) return null;
    const whole = this.buf.length - (this.buf.length % 512);
    const n = whole === 0 ? this.buf.length : Math.min(max, whole);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** Whole blocks split around null-block lookalikes (see gate), each of those as a piece of its own. */
function* blockPieces(blocks: Buffer): Generator<[Buffer, boolean]> {
  let from = 0;
  for (let at = 0; at < blocks.length; at += 512) {
    if (blocks[at] !== 0 || !nullLookalike(blocks, at)) continue;
    if (at > from) yield [blocks.subarray(from, at), false];
    yield [blocks.subarray(at, at + 512), true];
    from = at + 512;
  }
  if (from < blocks.length) yield [blocks.subarray(from), false];
}

/** Zero outside the checksum field (bytes 148–155), but not all zero: a real end-of-archive block is all zero. */
function nullLookalike(b: Buffer, at: number): boolean {
  for (let i = at; i < at + 512; i++) if (b[i] !== 0 && (i - at < 148 || i - at >= 156)) return false;
  for (let i = at + 148; i < at + 156; i++) if (b[i] !== 0) return true;
  return false;
}

/**
 * The first step, in pipeline order, that failed on its own: one killed by a broken pipe or by `stop` only followed
 * another's failure, and is named only when nothing else failed.
 */
function firstFailure(steps: Array<[PromiseSettledResult<unknown> | undefined, (err: unknown) => Error]>): Error | undefined {
  const failed = steps.find(([r]) => r?.status === 'rejected' && !secondary(r.reason)) ?? steps.find(([r]) => r?.status === 'rejected');
  return failed && failed[1]((failed[0] as PromiseRejectedResult).reason);
}

/**
 * Killed by a broken pipe (the next process had died) or by `stop` (another step failed first). A process that
 * exited with its own error code before `stop` reached it is not, though execa marks it cancelled.
 */
function secondary(err: unknown): boolean {
  const e = err as { signal?: string; isCanceled?: boolean; exitCode?: number; code?: string };
  const ownError = !e.signal && typeof e.exitCode === 'number' && e.exitCode > 0;
  return e.signal === 'SIGPIPE' || (e.isCanceled === true && !ownError) || e.code === 'EPIPE';
}

/** A full or read-only disk is the backup host's problem, not the archive's. */
function tarError(label: string, err: unknown): LifeboatError {
  const text = stderrOf(err);
  if (/No space left on device|Disk quota exceeded/.test(text)) return new LifeboatError('InsufficientSpace', `tar could not extract ${label}: ${text}`);
  if (/Permission denied|Read-only file system/.test(text)) return new LifeboatError('PermissionDenied', `tar could not extract ${label}: ${text}`);
  return new LifeboatError('IntegrityCheckFailed', `tar could not extract ${label}: ${text}`);
}

/** `<root>/a/b` → `a/b`. */
function belowRoot(digests: Map<string, FileDigest>, root: string): Map<string, FileDigest> {
  const out = new Map<string, FileDigest>();
  for (const [path, d] of digests) if (path.startsWith(`${root}/`)) out.set(path.slice(root.length + 1), d);
  return out;
}

/** GNU tar only warns (exit 0) when a filesystem refuses an xattr or an ACL. */
function tarWarnings(stderr: unknown): string[] {
  return String(stderr ?? '').split('\n').filter((l) => /^tar: .*(xattr|acl|ACL|extended attribute)/.test(l));
}

/**
 * A non-empty target would mix what the archive holds with what was there; that is a caller's mistake. Returns
 * whether the (empty) directory was there already.
 */
async function assertEmptyTarget(targetDir: string): Promise<boolean> {
  const names = await readdir(targetDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (names && names.length > 0) throw new LifeboatError('ConfigError', `extract target ${targetDir} is not empty (${names.slice(0, 3).join(', ')}…)`);
  return names !== undefined;
}

/**
 * GNU tar's extraction argv. --keep-old-files: nothing in the archive may replace something already extracted.
 * As root: numeric owners (a name means another uid, or none, on the backup host), exact modes, and the xattrs
 * createArchive stores: user.*, security.capability, and POSIX ACLs as their system.posix_acl_* xattrs, which
 * hold numeric ids (tar 1.34's --acls writes user names even with --numeric-owner). Whatever else an archive
 * carries (trusted.*, security.selinux) is not set. Not as root: the worker's user owns everything, modes
 * follow its umask as before, and security.capability (which needs CAP_SETFCAP) is left out.
 */
export function extractTarArgs(targetDir: string, asRoot: boolean): string[] {
  const xattrs = ['user.*', 'system.posix_acl_access', 'system.posix_acl_default', ...(asRoot ? ['security.capability'] : [])];
  return [
    '-x', '-f', '-', '-C', targetDir,
    ...(asRoot ? ['--same-owner', '--numeric-owner', '--same-permissions'] : ['--no-same-owner', '--no-same-permissions']),
    '--xattrs', ...xattrs.map((x) => `--xattrs-include=${x}`),
    '--delay-directory-restore', '--keep-old-files',
  ];
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: unknown; message?: string };
  return typeof e.stderr === 'string' && e.stderr ? e.stderr.trim() : (e.message ?? String(err));
}

/** What GNU tar made must be exactly what pass 1 validated: same names, kinds, sizes and symlink targets. */
async function compareTree(archive: string, targetDir: string, listing: Listing): Promise<void> {
  const expected = expectedTree(listing);
  const found = new Map<string, Member>();
  await walkTree(targetDir, '', found);
  for (const [path, m] of found) {
    const want = expected.get(path);
    const same = want && want.kind === m.kind && (m.kind !== 'symlink' || want.link === m.link) && (want.size < 0 || want.size === m.size);
    if (!same) throw unsafe(archive, path, `was extracted as ${describe(m)}, but the validated listing has ${want ? describe(want) : 'no such entry'}`);
  }
  for (const [path, want] of expected) {
    if (!found.has(path)) throw unsafe(archive, path, `(${describe(want)}) was not extracted`);
  }
}

function expectedTree(listing: Listing): Map<string, Member> {
  const out = new Map<string, Member>();
  for (const path of listing.members.keys()) {
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) out.set(segments.slice(0, i).join('/'), { kind: 'dir', size: -1 }); // implied parents
  }
  for (const [path, m] of listing.members) {
    if (m.kind === 'dir') out.set(path, { kind: 'dir', size: -1 });
    else if (m.kind === 'symlink') out.set(path, { kind: 'symlink', link: m.link ?? '', size: -1 });
    else out.set(path, { kind: 'file', size: m.kind === 'file' ? m.size : -1 });
  }
  return out;
}

async function walkTree(base: string, rel: string, found: Map<string, Member>): Promise<void> {
  for (const name of await readdir(join(base, rel))) {
    const path = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(base, path));
    if (st.isDirectory()) {
      found.set(path, { kind: 'dir', size: -1 });
      await walkTree(base, path, found);
    } else if (st.isSymbolicLink()) found.set(path, { kind: 'symlink', link: await readlink(join(base, path)), size: -1 });
    else if (st.isFile()) found.set(path, { kind: 'file', size: st.size });
    else found.set(path, { kind: 'special', size: -1 }); // never in a validated listing
  }
}

function describe(m: Member): string {
  if (m.kind === 'symlink') return `a symlink to ${JSON.stringify(m.link)}`;
  if (m.kind === 'dir') return 'a directory';
  if (m.kind === 'special') return 'a special file';
  return m.size >= 0 ? `a file of ${m.size} bytes` : 'a file';
}

async function emptyDir(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.map((n) => rm(join(dir, n), { recursive: true, force: true })));
}
