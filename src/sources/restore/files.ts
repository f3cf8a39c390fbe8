// Files restore and restore drill. The snapshot keeps each captured path with its full path below
// files/<source>/<artifact>/, so every path (or the part under --path-prefix) goes back to where it was, or
// below --to-dir with its full path kept. Nothing on the target is deleted unless --force. Owners (numeric, when
// the SSH user is root), modes, hard links, ACLs and the kept xattrs go back as captured; attributes the target
// cannot take (a filesystem without xattrs) are reported in the result's warnings, not fatal.
import { lstat, open, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FilesArtifact } from '../../config/schema';
import type { Host } from '../../remote/host';
import { rsyncPush } from '../../remote/rsync';
import { LifeboatError } from '../../shared/errors';
import { BUILTIN_DENY, rsyncExcludeArgs } from '../../snapshot/deny-list';
import { filesDir } from '../files';
import { treeStats } from '../pull-tree';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { recordedPaths, withRecordedPaths } from './snapshot-paths';
import { inUse, targetStates, type PathState } from './remote';

interface Unit {
  /** Absolute path on the source host, as captured. */
  path: string;
  /** Its copy on the backup host. */
  local: string;
  /** Where it is written on the target host. */
  dest: string;
  isDir: boolean;
}

type Ctx = Omit<RestoreContext<FilesArtifact>, 'progress'>;

const norm = (p: string) => p.replace(/\/+$/, '') || '/';
const isUnder = (p: string, root: string) => p === root || p.startsWith(root === '/' ? '/' : `${root}/`);

/**
 * The artifact's tree in the snapshot. metadata.yml may only confirm the one place capture uses (c.source was
 * matched against the plan's sources before we get here), never point elsewhere (`../../etc`).
 */
function snapshotBase(snapshotDir: string, c: RecordedComponent, artifact: string): string {
  const own = filesDir(c.source, artifact);
  return join(snapshotDir, recordedPaths(c, artifact, [own])[0] ?? own);
}

/** The configured paths narrowed to the prefix, nested ones dropped (their parent carries them). */
function wanted(a: FilesArtifact, prefix: string | undefined): string[] {
  const roots = [...a.paths, ...a.optionalPaths].map(norm);
  const picked = roots.map((r) => (!prefix || isUnder(r, prefix) ? r : isUnder(prefix, r) ? prefix : undefined)).filter((p): p is string => !!p);
  const unique = [...new Set(picked)];
  return unique.filter((p) => !unique.some((q) => q !== p && isUnder(p, q)));
}

/** What the snapshot holds for this restore; configured paths it lacks (missing optional ones) are left out. */
async function unitsOf(ctx: Ctx): Promise<Unit[]> {
  const base = snapshotBase(ctx.snapshotDir, ctx.component, ctx.artifact.name);
  const prefix = ctx.options.pathPrefix === undefined ? undefined : norm(ctx.options.pathPrefix);
  if (prefix !== undefined && !prefix.startsWith('/')) throw new LifeboatError('ConfigError', `--path-prefix must be an absolute path: ${prefix}`);
  const units: Unit[] = [];
  for (const path of wanted(ctx.artifact, prefix)) {
    const local = join(base, path);
    const st = await lstat(local).catch(() => undefined);
    if (st) units.push({ path, local, dest: ctx.options.dir ? join(ctx.options.dir, path) : path, isDir: st.isDirectory() });
  }
  if (units.length === 0) {
    const what = prefix ? `under ${prefix}` : 'of its paths';
    throw new LifeboatError('ConfigError', `the snapshot holds nothing ${what} for files artifact ${ctx.artifact.name} (paths: ${[...ctx.artifact.paths, ...ctx.artifact.optionalPaths].join(', ')})`);
  }
  return units;
}

/** A directory cannot replace a file or the reverse, even with force. */
function kindClash(u: Unit, state: PathState): string | undefined {
  const targetIsDir = state === 'dir' || state === 'empty-dir';
  if (state === 'absent' || targetIsDir === u.isDir) return undefined;
  return `${u.dest} is a ${targetIsDir ? 'directory' : 'file'} but the snapshot holds a ${u.isDir ? 'directory' : 'file'}`;
}

async function inspect(ctx: Ctx): Promise<{ units: Unit[]; states: PathState[]; root: boolean }> {
  const units = await unitsOf(ctx);
  return { units, ...(await targetStates(ctx.host, units.map((u) => u.dest), ctx.signal)) };
}

function targetText(host: Host, units: Unit[]): string {
  return `${host.label}:${units.map((u) => u.dest).join(', ')}`;
}

// Excluded files are never sent and, with --delete, never deleted on the target: the deny-listed ones
// (never in a snapshot) and the artifact's own excludes must survive a forced restore.
function protectArgs(a: FilesArtifact): string[] {
  return rsyncExcludeArgs([...BUILTIN_DENY, ...a.exclude]);
}

export const filesRestore: RestoreModule<FilesArtifact> = {
  async planRestore(ctx): Promise<RestoreStep> {
    const { units, states } = await inspect(ctx);
    const used = states.some(inUse);
    const clash = units.map((u, i) => kindClash(u, states[i]!)).find(Boolean);
    const busy = units.filter((_, i) => inUse(states[i]!)).map((u) => u.dest);
    const action = clash
      ? `refused: ${clash}`
      : busy.length && !ctx.options.force
        ? `refused: not empty: ${busy.join(', ')} (pass --force to overwrite)`
        : `rsync ${units.length} path(s)${ctx.options.force ? ', replacing changed files and deleting files the snapshot lacks' : ''}`;
    return { artifact: ctx.artifact.name, type: 'files', target: targetText(ctx.host, units), targetInUse: used, action };
  },

  async restore(ctx) {
    const { units, states, root } = await inspect(ctx);
    const clash = units.map((u, i) => kindClash(u, states[i]!)).find(Boolean);
    if (clash) throw new LifeboatError('ConfigError', `${clash} (on ${ctx.host.label})`);
    const busy = units.filter((_, i) => inUse(states[i]!)).map((u) => u.dest);
    if (busy.length && !ctx.options.force) {
      throw new LifeboatError('ConfigError', `not empty on ${ctx.host.label}: ${busy.join(', ')}; restore elsewhere with --to-dir <dir>, or pass --force to overwrite (files the snapshot lacks are deleted)`);
    }
    const restored: Array<{ path: string; target: string; files: number; bytes: number }> = [];
    const warnings: string[] = [];
    for (const u of units) {
      ctx.progress({ artifact: ctx.artifact.name, path: u.path });
      const stats = await push(ctx, u, root);
      restored.push({ path: u.path, target: u.dest, files: stats.files, bytes: stats.totalFileSize });
      warnings.push(...(stats.warnings ?? []));
    }
    const details = { paths: restored, deleted_extra: ctx.options.force, ...(warnings.length ? { warnings } : {}) };
    return { target: targetText(ctx.host, units), bytes: restored.reduce((s, r) => s + r.bytes, 0), details };
  },

  async verify(ctx) {
    return withRecordedPaths(ctx.artifact.name, () => drill(ctx));
  },
};

async function drill(ctx: VerifyContext<FilesArtifact>): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const base = snapshotBase(ctx.snapshotDir, ctx.component, name);
  if (!(await lstat(base).catch(() => undefined))) return [{ artifact: name, check: 'files', ok: false, detail: `${base} is missing from the snapshot` }];
  const found = await treeStats(base, ctx.signal);
  return [
    countCheck(name, 'files', ctx.component.details.file_count, found.file_count),
    countCheck(name, 'bytes', ctx.component.details.total_bytes, found.total_bytes),
    await readableCheck(ctx, base),
  ];
}

/** One session per path: rsync's own, which also creates the target's directory (inspect knew who we are there). */
async function push(ctx: RestoreContext<FilesArtifact>, u: Unit, receiverIsRoot: boolean) {
  const onProgress = (rsync: string) => ctx.progress({ artifact: ctx.artifact.name, path: u.path, rsync });
  const [from, to] = u.isDir ? [`${u.local}/`, `${u.dest}/`] : [u.local, u.dest];
  const makeDir = u.isDir ? u.dest : dirname(u.dest);
  return rsyncPush(ctx.host, from, to, { signal: ctx.signal, delete: ctx.options.force, excludeArgs: protectArgs(ctx.artifact), onProgress, receiverIsRoot, makeDir });
}

function countCheck(artifact: string, check: 'files' | 'bytes', recorded: unknown, found: number): VerifyCheck {
  const unit = check === 'files' ? 'regular files' : 'bytes';
  if (typeof recorded !== 'number') return { artifact, check, ok: true, detail: `${found} ${unit}; not recorded in metadata.yml` };
  return { artifact, check, ok: recorded === found, detail: recorded === found ? `${found} ${unit} as recorded` : `expected ${recorded} ${unit}, the snapshot holds ${found}` };
}

/** Every regular file opens for reading (what a restore will need). */
async function readableCheck(ctx: VerifyContext<FilesArtifact>, base: string): Promise<VerifyCheck> {
  const failed: string[] = [];
  for (const entry of await readdir(base, { recursive: true, withFileTypes: true })) {
    ctx.signal.throwIfAborted();
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const fh = await open(path, 'r').catch(() => undefined);
    if (fh) await fh.close();
    else failed.push(path.slice(base.length));
  }
  const ok = failed.length === 0;
  return { artifact: ctx.artifact.name, check: 'readable', ok, detail: ok ? 'every file opens for reading' : `${failed.length} files cannot be read, e.g. ${failed.slice(0, 5).join(', ')}` };
}
