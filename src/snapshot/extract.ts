// Safe extraction of a snapshot archive from storage, which we do not trust. Pass 1 reads every tar header
// (node-tar's parser) and refuses anything that could land outside `<targetDir>/<snapshot>` before a byte is
// written; pass 2 lets GNU tar extract from a fresh decompression; then the extracted tree is compared with the
// validated listing, so a header the two parsers read differently cannot slip anything in unnoticed.
// As root, GNU tar restores numeric owners, modes (setuid, setgid, sticky), ACLs and the kept xattrs, so a
// restore pushes the tree as it was captured; the target directory is made private (0700) first, so a setuid
// file or a foreign owner in there is out of everyone else's reach. Not as root, owners are not restored.
import { once } from 'node:events';
import { chmod, lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { Parser, type ReadEntry } from 'tar';
import { LifeboatError } from '../shared/errors';
import type { ArchiveFormat } from './naming';
import { dieWithWorker } from '../shared/die-with-worker';

export interface ExtractResult {
  /** `<targetDir>/<top-level directory>`: the snapshot root. */
  root: string;
  /** Entries in the archive (files, directories, links). */
  entries: number;
  /** Attributes GNU tar could not set (e.g. xattrs on a filesystem without them); the files themselves are complete. */
  warnings: string[];
}

type Kind = 'file' | 'hardlink' | 'dir' | 'symlink' | 'special';
interface Member {
  kind: Kind;
  link?: string;
  size: number;
}
interface Listing {
  root: string;
  members: Map<string, Member>;
}

const KINDS: Record<string, Kind> = { File: 'file', OldFile: 'file', ContiguousFile: 'file', Link: 'hardlink', Directory: 'dir', SymbolicLink: 'symlink' };
const MAX_LINK_DEPTH = 40; // like the kernel's ELOOP limit

export async function extractArchive(archive: string, format: ArchiveFormat, targetDir: string, opts: { signal?: AbortSignal } = {}): Promise<ExtractResult> {
  await assertEmptyTarget(targetDir);
  const listing = await scanArchive(archive, format, opts.signal);
  await mkdir(targetDir, { recursive: true, mode: 0o700 });
  await chmod(targetDir, 0o700); // an existing empty directory too: what lands inside keeps setuid bits and owners
  let warnings: string[];
  try {
    warnings = await gnuExtract(archive, format, targetDir, opts.signal);
    await compareTree(archive, targetDir, listing);
  } catch (err) {
    await emptyDir(targetDir); // never leave a half-extracted or unexpected tree behind
    throw err;
  }
  return { root: join(targetDir, listing.root), entries: listing.members.size, warnings };
}

function decompressArgv(format: ArchiveFormat, archive: string): [string, string[]] {
  return format === 'tar.zst' ? ['zstd', ['-d', '-c', '-q', '--', archive]] : ['gzip', ['-d', '-c', '--', archive]];
}

/** A non-empty target would mix what the archive holds with what was there; that is a caller's mistake. */
async function assertEmptyTarget(targetDir: string): Promise<void> {
  const names = await readdir(targetDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (names.length > 0) throw new LifeboatError('ConfigError', `extract target ${targetDir} is not empty (${names.slice(0, 3).join(', ')}…)`);
}

function unsafe(archive: string, entry: string, reason: string): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', `unsafe archive ${archive}: entry ${JSON.stringify(entry)} ${reason}`, { archive, entry });
}

// ---- pass 1: validate every header ----

async function scanArchive(archive: string, format: ArchiveFormat, signal?: AbortSignal): Promise<Listing> {
  const stop = new AbortController();
  const [cmd, args] = decompressArgv(format, archive);
  const proc = execa(...dieWithWorker(cmd, args), { cancelSignal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal, stdin: 'ignore', buffer: { stdout: false }, forceKillAfterDelay: 5000 });
  const v = new Validator(archive);
  // brotli/zstd sniffing off: the stream is already decompressed, and GNU tar would not decompress it again.
  const parser = new Parser({ strict: true, brotli: false, zstd: false, onReadEntry: (e: ReadEntry) => v.add(e) });
  parser.on('ignoredEntry', (e: ReadEntry) => v.fail(e.path, `has an entry type this check does not know (${String(e.header.type)}), which GNU tar would extract as a file`));
  parser.on('error', (err: Error) => v.fail('', `is not a readable tar stream: ${err.message}`));
  const ended = new Promise<void>((resolve) => parser.on('end', resolve));
  try {
    await feed(proc.stdout, parser, v);
    if (!v.problem) {
      parser.end();
      await Promise.race([ended, v.failed]);
    }
  } finally {
    if (v.problem) stop.abort();
    const exit = await proc.then(() => undefined, (err: unknown) => err ?? 'failed');
    signal?.throwIfAborted(); // a cancelled run is not a bad archive
    if (exit && !v.problem) throw decompressError(archive, exit);
  }
  if (v.problem) throw v.problem;
  return v.finish();
}

async function feed(stdout: AsyncIterable<Buffer>, parser: Parser, v: Validator): Promise<void> {
  let head = Buffer.alloc(0);
  for await (const chunk of stdout) {
    if (head.length < 512) {
      head = Buffer.concat([head, chunk]);
      // GNU and POSIX tar both carry "ustar" here; anything else (a nested gzip, a v7 tar) is not ours.
      if (head.length >= 512 && head.subarray(257, 262).toString('latin1') !== 'ustar') v.fail('', 'is not a GNU/POSIX tar stream');
    }
    if (v.problem) return;
    // once() rejects on 'error', which v.fail has already recorded.
    if (!parser.write(chunk)) await Promise.race([once(parser, 'drain').catch(() => undefined), v.failed]);
    if (v.problem) return;
  }
  if (head.length < 512) v.fail('', 'is not a GNU/POSIX tar stream (too short)');
}

function decompressError(archive: string, err: unknown): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', `cannot decompress ${archive}: ${(err as Error).message}`);
}

class Validator {
  root: string | undefined;
  readonly members = new Map<string, Member>();
  problem: LifeboatError | undefined;
  private onFail: () => void = () => {};
  /** Resolves at the first problem, ending any wait on the parser. */
  readonly failed = new Promise<void>((resolve) => (this.onFail = resolve));

  constructor(private readonly archive: string) {}

  fail(entry: string, reason: string): void {
    this.problem ??= entry ? unsafe(this.archive, entry, reason) : new LifeboatError('IntegrityCheckFailed', `unsafe archive ${this.archive}: ${reason}`, { archive: this.archive });
    this.onFail();
  }

  add(e: ReadEntry): void {
    e.resume(); // contents are not needed in this pass
    if (this.problem) return;
    const reason = this.check(e);
    if (reason) this.fail(e.path, reason);
  }

  private check(e: ReadEntry): string | undefined {
    const kind = KINDS[e.type];
    if (!kind) return `is a ${e.type} entry; only files, directories and links are allowed`;
    const path = kind === 'dir' ? e.path.replace(/\/$/, '') : e.path;
    const bad = this.badPath(path);
    if (bad) return bad;
    if (this.members.has(path)) return 'appears twice';
    if (path === this.root && kind !== 'dir') return 'is the top-level entry but not a directory';
    if (kind === 'symlink' && e.linkpath?.startsWith('/')) return `is a symlink to the absolute path ${JSON.stringify(e.linkpath)}`;
    if (kind === 'hardlink') {
      const problem = this.badHardLink(e.linkpath ?? '');
      if (problem) return problem;
    }
    this.members.set(path, { kind, size: e.size ?? 0, ...(e.linkpath !== undefined ? { link: e.linkpath } : {}) });
    return undefined;
  }

  private badPath(path: string): string | undefined {
    if (path.startsWith('/')) return 'has an absolute path';
    const segments = path.split('/');
    if (segments.includes('..')) return 'has a ".." component';
    if (segments.some((s) => s === '' || s === '.')) return 'has an empty or "." path component';
    this.root ??= segments[0]!;
    if (segments[0] !== this.root) return `is outside the archive's single top-level directory ${JSON.stringify(this.root)}`;
    return undefined;
  }

  /** GNU tar links to an already extracted name (relative to the archive root); a symlink there would re-aim it. */
  private badHardLink(target: string): string | undefined {
    const bad = this.badPath(target);
    if (bad) return `is a hard link to ${JSON.stringify(target)}, which ${bad}`;
    const kind = this.members.get(target)?.kind;
    if (kind !== 'file' && kind !== 'hardlink') return `is a hard link to ${JSON.stringify(target)}, which is not a regular file earlier in the archive`;
    return undefined;
  }

  /** Checks that need the whole listing: nothing is written through a link, and every symlink stays inside. */
  finish(): Listing {
    if (!this.root) throw new LifeboatError('IntegrityCheckFailed', `archive ${this.archive} holds no entries`);
    for (const [path, m] of this.members) {
      const parent = nonDirParent(this.members, path);
      if (parent) throw unsafe(this.archive, path, `is under ${JSON.stringify(parent)}, which is not a directory`);
      if (m.kind === 'symlink' && !resolveLink(this.members, path.split('/').slice(0, -1), m.link ?? '', 0)) {
        throw unsafe(this.archive, path, `is a symlink to ${JSON.stringify(m.link)}, which resolves outside the archive root`);
      }
    }
    return { root: this.root, members: this.members };
  }
}

function nonDirParent(members: Map<string, Member>, path: string): string | undefined {
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const prefix = segments.slice(0, i).join('/');
    const kind = members.get(prefix)?.kind;
    if (kind && kind !== 'dir') return prefix;
  }
  return undefined;
}

/**
 * Where `target`, relative to `dir`, ends up once extracted, following the archive's own symlinks on the way
 * (a lexical check alone misses `d -> .` plus `e -> d/..`). null: it leaves the root, is absolute, or loops.
 */
function resolveLink(members: Map<string, Member>, dir: string[], target: string, depth: number): string[] | null {
  if (depth > MAX_LINK_DEPTH || target.startsWith('/')) return null;
  let parts = [...dir];
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      parts.pop();
      if (parts.length === 0) return null; // popped the top-level directory itself
      continue;
    }
    parts.push(seg);
    const m = members.get(parts.join('/'));
    if (m?.kind === 'symlink') {
      const next = resolveLink(members, parts.slice(0, -1), m.link ?? '', depth + 1);
      if (!next) return null;
      parts = next;
    }
  }
  return parts;
}

// ---- pass 2: extract with GNU tar, then compare ----

/** Returns GNU tar's warnings about attributes it could not set. */
async function gnuExtract(archive: string, format: ArchiveFormat, targetDir: string, signal?: AbortSignal): Promise<string[]> {
  const [cmd, args] = decompressArgv(format, archive);
  const common = { cancelSignal: signal, forceKillAfterDelay: 5000 } as const;
  const decompress = execa(...dieWithWorker(cmd, args), { ...common, stdin: 'ignore', buffer: { stdout: false } });
  const tar = execa(...dieWithWorker('tar', extractTarArgs(targetDir, process.getuid?.() === 0)), common);
  decompress.stdout.pipe(tar.stdin);
  const [d, t] = await Promise.allSettled([decompress, tar]);
  signal?.throwIfAborted();
  if (t.status === 'rejected') throw new LifeboatError('IntegrityCheckFailed', `tar could not extract ${archive}: ${stderrOf(t.reason)}`);
  if (d.status === 'rejected') throw decompressError(archive, d.reason);
  // GNU tar only warns (exit 0) when a filesystem refuses an xattr or an ACL.
  return String(t.value.stderr ?? '').split('\n').filter((l) => /^tar: .*(xattr|acl|ACL|extended attribute)/.test(l));
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
