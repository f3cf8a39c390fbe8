// Checks of an untrusted tar stream's headers, one entry at a time, as node-tar's parser reads them: extraction
// (extract.ts) forwards a byte to GNU tar only once every header in it has passed here. Each regular file's
// SHA-256 is taken as its bytes go by, so the manifest is checked without reading the extracted tree again.
import { createHash, type Hash } from 'node:crypto';
import type { ReadEntry } from 'tar';
import { LifeboatError } from '../shared/errors';

export type Kind = 'file' | 'hardlink' | 'dir' | 'symlink' | 'special';
export interface Member {
  kind: Kind;
  link?: string;
  size: number;
}
export interface Listing {
  root: string;
  members: Map<string, Member>;
}
export interface FileDigest {
  sha256: string;
  size: number;
}

const KINDS: Record<string, Kind> = { File: 'file', OldFile: 'file', ContiguousFile: 'file', Link: 'hardlink', Directory: 'dir', SymbolicLink: 'symlink' };
const MAX_LINK_DEPTH = 40; // like the kernel's ELOOP limit

export function unsafe(archive: string, entry: string, reason: string): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', `unsafe archive ${archive}: entry ${JSON.stringify(entry)} ${reason}`, { archive, entry });
}

export class TarValidator {
  root: string | undefined;
  readonly members = new Map<string, Member>();
  /** By path inside the archive (`<root>/database/app.sql`); a hard link carries its target's. */
  readonly digests = new Map<string, FileDigest>();
  problem: LifeboatError | undefined;
  private onFail: () => void = () => {};
  /** Resolves at the first problem, ending any wait on the parser or on GNU tar. */
  readonly failed = new Promise<void>((resolve) => (this.onFail = resolve));

  constructor(private readonly archive: string) {}

  fail(entry: string, reason: string): void {
    this.problem ??= entry ? unsafe(this.archive, entry, reason) : new LifeboatError('IntegrityCheckFailed', `unsafe archive ${this.archive}: ${reason}`, { archive: this.archive });
    this.onFail();
  }

  /** An entry a partial extraction stopped at (never forwarded to GNU tar): not part of the listing. */
  forget(path: string): void {
    this.members.delete(path.replace(/\/$/, ''));
    this.digests.delete(path);
  }

  add(e: ReadEntry): void {
    if (this.problem) return void e.resume();
    const reason = this.check(e);
    if (reason) {
      e.resume();
      return this.fail(e.path, reason);
    }
    const kind = KINDS[e.type]!;
    if (kind === 'file') this.hash(e);
    else e.resume();
    if (kind === 'hardlink') {
      const target = this.digests.get(e.linkpath ?? '');
      if (target) this.digests.set(e.path, target);
    }
  }

  private hash(e: ReadEntry): void {
    const h: Hash = createHash('sha256');
    let size = 0;
    e.on('data', (chunk: Buffer) => {
      h.update(chunk);
      size += chunk.length;
    });
    e.on('end', () => this.digests.set(e.path, { sha256: h.digest('hex'), size }));
  }

  private check(e: ReadEntry): string | undefined {
    const kind = KINDS[e.type];
    if (!kind) return `is a ${e.type} entry; only files, directories and links are allowed`;
    const path = kind === 'dir' ? e.path.replace(/\/$/, '') : e.path;
    const bad = this.badPath(path);
    if (bad) return bad;
    if (this.members.has(path)) return 'appears twice';
    if (path === this.root && kind !== 'dir') return 'is the top-level entry but not a directory';
    // Known now, so refused before GNU tar could write through it; a link made later is caught by finish().
    const parent = nonDirParent(this.members, path);
    if (parent) return `is under ${JSON.stringify(parent)}, which is not a directory`;
    if (kind === 'symlink') {
      if (e.linkpath?.startsWith('/')) return `is a symlink to the absolute path ${JSON.stringify(e.linkpath)}`;
      if (!resolveLink(this.members, path.split('/').slice(0, -1), e.linkpath ?? '', 0)) return `is a symlink to ${JSON.stringify(e.linkpath)}, which resolves outside the archive root`;
    }
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

  /**
   * Checks that need the whole listing: a symlink may name a path (or pass through a link) that comes later, and
   * an entry may sit under a name made a link later. GNU tar extracts a link whose target has ".." as a
   * placeholder until its end, so nothing was written through one before this runs.
   */
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
