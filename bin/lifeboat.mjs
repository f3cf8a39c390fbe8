#!/usr/bin/env node
// `lifeboat`: runs the compiled CLI (dist/lifeboat.mjs, built by the install step with scripts/build.mjs) when it is
// newer than every file under src/; else the TypeScript sources through tsx, so an edit is never run stale (only
// slower: tsx compiles at every start).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newestMtime } from './newest-mtime.mjs';

// The AWS SDK prints a ten-line NodeVersionSupportWarning for every process that creates an S3 client on Node < 22
// (aws/aws-sdk-js-v3#7983); Lifeboat supports Node >= 20.3, so the SDK's documented switch turns it off. It is read
// when a client is created, so setting it here, before anything loads, covers the CLI and the worker. A value the
// user set (e.g. "false") wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = fileURLToPath(new URL('..', import.meta.url));


const built = statSync(join(root, 'dist', 'lifeboat.mjs'), { throwIfNoEntry: false });
if (built && built.mtimeMs > newestMtime(join(root, 'src'))) {
  // Stack traces name src/ files and lines (dist/*.map), as they did under tsx.
  process.setSourceMapsEnabled(true);
  await import('../dist/lifeboat.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
