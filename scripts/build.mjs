#!/usr/bin/env node
// `npm run build` (and the install step, scripts/ensure-node-modules.sh): compiles Lifeboat into dist/ so that
// neither the CLI nor the worker compiles TypeScript or runs webpack at start.
//   dist/lifeboat.mjs   the CLI (src/cli/main.ts), one ESM file, npm packages left as imports (node_modules)
//   dist/chunks/*.mjs   code loaded on demand, behind `await import(…)` (the worker; a command's own modules)
//   dist/workflows.js   the workflow bundle (bundleWorkflowCode), loaded by the worker as `workflowBundle`, its
//                       source map slimmed (workflow-source-map.mjs)
// bin/lifeboat.mjs runs dist/ only while it is newer than every file under src/ (else the sources through tsx), and
// src/workers/workflow-bundle.ts uses dist/workflows.js only while it is current, so a stale build is never run.
//
//   node scripts/build.mjs             build
//   node scripts/build.mjs --if-stale  build only when dist/ is missing or older than src/ (or node_modules)
//   node scripts/build.mjs --quiet     print nothing unless it fails
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newestMtime } from '../bin/newest-mtime.mjs';
import { slimSourceMap } from './workflow-source-map.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const say = (msg) => quiet || console.error(`lifeboat: ${msg}`);


function mtimeOr0(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** dist/ is current when both outputs are newer than src/, and the workflow bundle (which holds
 * @temporalio/workflow's own code) newer than the last npm install too. */
function isCurrent(root = ROOT) {
  const src = newestMtime(join(root, 'src'));
  const cli = mtimeOr0(join(root, 'dist', 'lifeboat.mjs'));
  const wf = mtimeOr0(join(root, 'dist', 'workflows.js'));
  const deps = mtimeOr0(join(root, 'node_modules', '.package-lock.json'));
  return cli > src && wf > src && wf > deps;
}

/**
 * A deep import of a package without an "exports" map (`@temporalio/common/lib/time`, a directory or a file without
 * its extension) works under tsx and webpack, but not in Node's ESM resolver, which dist/ runs under: keep it
 * external, spelled as the file CommonJS resolution finds (`@temporalio/common/lib/time.js`).
 */
const fullySpecifiedDeepImports = {
  name: 'fully-specified-deep-imports',
  setup(b) {
    b.onResolve({ filter: /^(@[^/.:][^/:]*\/)?[^/.@:][^/:]*\/./ }, (args) => {
      const pkg = args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
      const require = createRequire(join(args.resolveDir || ROOT, 'noop.js'));
      let manifest;
      try {
        manifest = require.resolve(`${pkg}/package.json`);
      } catch {
        return undefined; // not installed, or exports without ./package.json: leave it to Node (checked below)
      }
      if (JSON.parse(readFileSync(manifest, 'utf8')).exports !== undefined) return { path: args.path, external: true };
      const file = require.resolve(args.path);
      return { path: `${pkg}/${relative(dirname(manifest), file).split(sep).join('/')}`, external: true };
    });
  },
};

/** Every package import in the compiled files must resolve under Node's ESM rules: fail the build, not a command at
 * run time. (Resolved from scripts/, which finds the same node_modules as dist/.) */
function checkImports(metafile) {
  if (typeof import.meta.resolve !== 'function') return; // Node < 20.6 (engines: >= 20.3): the check needs it
  const problems = [];
  const specs = new Set(Object.values(metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external && !i.path.startsWith('node:')).map((i) => i.path)));
  for (const spec of specs) {
    try {
      // Node 20 answers a URL for a missing file or a directory inside an installed package: check it is a file.
      const url = import.meta.resolve(spec);
      if (url.startsWith('file:') && !statSync(fileURLToPath(url), { throwIfNoEntry: false })?.isFile()) problems.push(`${spec}: ${fileURLToPath(url)} is not a file`);
    } catch (err) {
      problems.push(`${spec}: ${err.message.split('\n')[0]}`);
    }
  }
  if (problems.length) throw new Error(`compiled code imports what Node cannot resolve:\n  ${problems.join('\n  ')}`);
}

async function build() {
  // Outputs get this time as their mtime: a source saved while the build runs stays newer than the build.
  const started = Date.now() / 1000;
  const tmp = join(ROOT, `dist.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const esbuild = await import('esbuild');
    const { metafile } = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: { lifeboat: 'src/cli/main.ts' },
      outdir: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // npm packages stay imports resolved from node_modules at run time (native modules, the SDK's own files).
      packages: 'external',
      // Each `await import(…)` becomes a chunk: a command loads its own code, and only `worker` loads the worker.
      splitting: true,
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunks/[name]-[hash]',
      sourcemap: true,
      sourcesContent: false,
      legalComments: 'none',
      logLevel: 'warning',
      metafile: true,
      plugins: [fullySpecifiedDeepImports],
    });
    checkImports(metafile);

    // The worker would otherwise run webpack over src/workflows at every start (seconds of CPU, ~150 MiB of RSS kept).
    const { bundleWorkflowCode } = await import('@temporalio/worker');
    const logger = { log() {}, trace() {}, debug() {}, info() {}, warn: (m) => console.error(m), error: (m) => console.error(m) };
    const { code } = await bundleWorkflowCode({ workflowsPath: join(ROOT, 'src/workflows/index.ts'), logger });
    const own = join(ROOT, 'src') + sep;
    writeFileSync(join(tmp, 'workflows.js'), await slimSourceMap(code, (source) => source.startsWith(own)));

    for (const f of ['lifeboat.mjs', 'workflows.js']) utimesSync(join(tmp, f), started, started);
    // Swap in whole, so a CLI starting meanwhile sees the old build or the new one, never half of one.
    const old = join(ROOT, `dist.old-${process.pid}`);
    try {
      renameSync(DIST, old);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err; // first build, or another build has it moved aside right now
    }
    try {
      renameSync(tmp, DIST);
    } catch (err) {
      // Another build swapped its dist/ in between: it is as new as this one.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    }
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (args.has('--if-stale') && isCurrent()) process.exit(0);
const t0 = Date.now();
say('compiling src/ into dist/ (CLI, worker, workflow bundle)…');
await build();
say(`dist/ built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
