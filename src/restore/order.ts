// The order a restore writes artifacts in. Each target must be empty unless --force, so when one artifact's path lies
// inside another's tree (a media directory the app tree excludes, a SQLite file below it), the outer tree goes
// first: written second, it would find the inner artifact's files there and refuse. Otherwise plan order stays, and
// artifacts that share no tree (a database and a file tree) may be written at the same time (restoreWaves).
// Pure (types only): the restore workflow uses it too.
import type { Artifact } from '../config/schema';

/** The paths an artifact writes on its host (files trees, a SQLite file); none for the other types (or none known). */
function targetPaths(a: Artifact | undefined): string[] {
  if (a?.type === 'files') return a.paths;
  if (a?.type === 'sqlite') return [a.path];
  return [];
}

const inside = (path: string, tree: string) => path !== tree && path.startsWith(tree.endsWith('/') ? tree : `${tree}/`);

/** Some path `inner` writes lies inside a tree `outer` writes. */
const holds = (outer: Artifact | undefined, inner: Artifact | undefined) => targetPaths(inner).some((p) => targetPaths(outer).some((tree) => inside(p, tree)));

/** Stable: each artifact after every artifact whose tree holds one of its paths (on any host: a harmless superset). */
export function outerTreesFirst<T extends { artifact: Artifact }>(chosen: T[]): T[] {
  const depth = (t: T) => chosen.filter((o) => o !== t && holds(o.artifact, t.artifact)).length;
  return chosen.map((t, i) => ({ t, i, d: depth(t) })).sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.t);
}

/**
 * `items` (in outerTreesFirst order) in waves: each artifact one wave after the last one holding an artifact it must
 * not be written beside (a tree holding one of its paths, or the same path). Artifacts within a wave touch nothing
 * of each other's and can be written at once; plan order within each wave.
 */
export function restoreWaves<T>(items: T[], artifactOf: (item: T) => Artifact | undefined): T[][] {
  const level: number[] = [];
  items.forEach((item, i) => {
    const a = artifactOf(item);
    const after = items.slice(0, i).flatMap((o, j) => (clash(artifactOf(o), a) ? [level[j]!] : []));
    level.push(after.length ? Math.max(...after) + 1 : 0);
  });
  const waves: T[][] = [];
  items.forEach((item, i) => (waves[level[i]!] ??= []).push(item));
  return waves.filter(Boolean);
}

const clash = (a: Artifact | undefined, b: Artifact | undefined) => holds(a, b) || holds(b, a) || targetPaths(a).some((p) => targetPaths(b).includes(p));
