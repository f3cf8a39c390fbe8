// The order a restore writes artifacts in. Each target must be empty unless --force, so when one artifact's path lies
// inside another's tree (a media directory the app tree excludes, a SQLite file below it), the outer tree goes
// first: written second, it would find the inner artifact's files there and refuse. Otherwise plan order stays.
import type { Artifact } from '../config/schema';

/** The paths an artifact writes on its host (files trees, a SQLite file); none for the other types. */
function targetPaths(a: Artifact): string[] {
  if (a.type === 'files') return a.paths;
  if (a.type === 'sqlite') return [a.path];
  return [];
}

const inside = (path: string, tree: string) => path !== tree && path.startsWith(tree.endsWith('/') ? tree : `${tree}/`);

/** Stable: each artifact after every artifact whose tree holds one of its paths (on any host: a harmless superset). */
export function outerTreesFirst<T extends { artifact: Artifact }>(chosen: T[]): T[] {
  const depth = (t: T) => chosen.filter((o) => o !== t && targetPaths(t.artifact).some((p) => targetPaths(o.artifact).some((tree) => inside(p, tree)))).length;
  return chosen.map((t, i) => ({ t, i, d: depth(t) })).sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.t);
}
