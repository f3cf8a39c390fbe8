// Where the checkout (or image) is: the workflow bundle and the `lifeboat` launcher are found from it.
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest directory above this module with a package.json. This module runs from src/shared/ under tsx and
 * vitest, and from a dist/ file once built. */
export function projectRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (statSync(join(dir, 'package.json'), { throwIfNoEntry: false })?.isFile()) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}
