// Newest mtime under a tree: how bin/lifeboat.mjs, scripts/build.mjs and the worker tell whether dist/ is current.
// Plain JavaScript, so bin/ can use it before anything is compiled.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Newest mtime (ms) under dir, directories included (a deleted file changes its directory's mtime); 0 if absent. */
export function newestMtime(dir) {
  let newest;
  let entries;
  try {
    newest = statSync(dir).mtimeMs;
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    const t = e.isDirectory() ? newestMtime(p) : (statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if (t > newest) newest = t;
  }
  return newest;
}
