// The compiled CLI (scripts/build.mjs → dist/): `lifeboat --help` is quick, the code it runs loads no heavy
// package, S3 commands print no AWS SDK warning, and bin/lifeboat.mjs and the worker use the build only while it is
// current (never a stale build after an edit).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { newestMtime } from '../../bin/newest-mtime.mjs';
import { currentWorkflowBundle, workflowCode } from '../../src/workers/workflow-bundle';
import { projectRoot } from '../../src/shared/project-root';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/lifeboat.mjs');

/** The install step's build; again if a source was saved since (others may be editing this checkout). */
function ensureBuilt(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--if-stale', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
}

function lifeboat(args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lifeboat-startup-'));
  ensureBuilt();
}, 300_000);
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('lifeboat --help', () => {
  it('answers in under 0.5 s from the compiled CLI and lists the commands (best of 3: the machine is shared)', () => {
    ensureBuilt();
    const runs = [lifeboat(['--help']), lifeboat(['--help']), lifeboat(['--help'])];
    for (const r of runs) {
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
    }
    for (const command of ['config', 'worker', 'backup', 'restore', 'verify', 'snapshots', 'keys', 'schedules', 'predeploy', 'retention']) {
      expect(runs[0]!.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    const best = Math.min(...runs.map((r) => r.ms));
    expect(best, `best of 3: ${runs.map((r) => `${Math.round(r.ms)} ms`).join(', ')}`).toBeLessThan(500);
  });

  it('runs code that imports only commander and Node built-ins (everything else is imported by the command that needs it)', async () => {
    // The same bundle as scripts/build.mjs, in memory: follow the static imports from the entry through its chunks.
    const { metafile } = await build({
      absWorkingDir: ROOT,
      entryPoints: { lifeboat: 'src/cli/main.ts' },
      outdir: join(tmp, 'meta'),
      write: false,
      metafile: true,
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      splitting: true,
      logLevel: 'silent',
    });
    const outputs = (metafile as Metafile).outputs;
    const entry = Object.keys(outputs).find((k) => outputs[k]!.entryPoint === 'src/cli/main.ts')!;
    const loaded = new Set<string>();
    const seen = new Set<string>();
    const walk = (out: string) => {
      if (seen.has(out)) return;
      seen.add(out);
      for (const i of outputs[out]!.imports) {
        if (i.kind !== 'import-statement') continue; // dynamic imports run only in the command that makes them
        if (i.external) loaded.add(i.path);
        else walk(i.path);
      }
    };
    walk(entry);
    const packages = [...loaded].filter((p) => !p.startsWith('node:') && p !== 'commander');
    expect(packages, 'imported at start by src/cli/* (move the import into the command\'s action: `await import(...)`)').toEqual([]);
  });
});

describe('S3 commands', () => {
  it('print no AWS SDK Node version warning', async () => {
    // A port nobody listens on: the S3 client is created and its request refused.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const config = join(tmp, 'lifeboat.yaml');
    writeFileSync(
      config,
      `backupRoot: ${join(tmp, 'root')}
storages:
  offsite:
    type: s3
    endpoint: http://127.0.0.1:${port}
    bucket: backups
    accessKeyId: { env: LIFEBOAT_TEST_S3_KEY }
    secretAccessKey: { env: LIFEBOAT_TEST_S3_SECRET }
plans:
  daily:
    storages: [offsite]
    sources:
      - name: here
        host: local
        artifacts:
          - { name: etc, type: files, paths: [/etc/hostname] }
`,
    );
    const env = { LIFEBOAT_TEST_S3_KEY: 'k', LIFEBOAT_TEST_S3_SECRET: 's' };
    const r = lifeboat(['-c', config, 'snapshots', 'list'], env);
    expect(r.stderr).toMatch(/storage offsite .*ECONNREFUSED/); // the client was made and used
    expect(r.stderr).not.toMatch(/NodeVersionSupportWarning|AWS SDK for JavaScript/);
    if (Number(process.versions.node.split('.')[0]) < 22) {
      // The warning this guards against, with the SDK's switch turned back on: proves the check above can see it.
      const loud = lifeboat(['-c', config, 'snapshots', 'list'], { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'false' });
      expect(loud.stderr).toMatch(/NodeVersionSupportWarning/);
    }
  });
});

describe('a stale build is never used', () => {
  const past = new Date(Date.now() - 3600_000);
  const future = new Date(Date.now() + 3600_000);

  /** root/src/workflows/index.ts, root/node_modules/.package-lock.json, root/dist/workflows.js, all an hour old. */
  function fakeCheckout(name: string): string {
    const root = join(tmp, name);
    for (const d of ['src/workflows', 'node_modules', 'dist']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{}');
    for (const f of ['src/workflows/index.ts', 'node_modules/.package-lock.json', 'dist/workflows.js']) writeFileSync(join(root, f), '');
    for (const p of ['src/workflows/index.ts', 'src/workflows', 'src', 'node_modules/.package-lock.json']) utimesSync(join(root, p), past, past);
    return root;
  }

  it('the worker loads dist/workflows.js while it is newer than src/ and the last npm install, else the sources', () => {
    const root = fakeCheckout('wf');
    expect(workflowCode(root)).toEqual({ workflowBundle: { codePath: join(root, 'dist/workflows.js') } });

    utimesSync(join(root, 'src/workflows/index.ts'), future, future); // a workflow edited after the build
    expect(workflowCode(root)).toEqual({ workflowsPath: join(root, 'src/workflows/index.ts') });

    utimesSync(join(root, 'src/workflows/index.ts'), past, past);
    utimesSync(join(root, 'node_modules/.package-lock.json'), future, future); // SDK updated after the build
    expect(currentWorkflowBundle(root)).toBeUndefined();

    utimesSync(join(root, 'node_modules/.package-lock.json'), past, past);
    rmSync(join(root, 'dist'), { recursive: true });
    expect(workflowCode(root)).toEqual({ workflowsPath: join(root, 'src/workflows/index.ts') });
  });

  it('this checkout: the worker picks the bundle the build just made', () => {
    ensureBuilt();
    expect(projectRoot()).toBe(ROOT.replace(/\/$/, ''));
    expect(newestMtime(join(ROOT, 'src'))).toBeGreaterThan(0);
    expect(workflowCode()).toEqual({ workflowBundle: { codePath: join(ROOT, 'dist/workflows.js') } });
  });

  it('bin/lifeboat.mjs runs dist/lifeboat.mjs while it is newer than every file under src/, else the sources (tsx)', () => {
    const root = join(tmp, 'bin');
    for (const d of ['bin', 'dist', 'src/cli']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(BIN, join(root, 'bin/lifeboat.mjs'));
    copyFileSync(join(ROOT, 'bin/newest-mtime.mjs'), join(root, 'bin/newest-mtime.mjs'));
    copyFileSync(join(ROOT, 'package.json'), join(root, 'package.json')); // "type": "module", as tsx needs
    symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
    writeFileSync(join(root, 'dist/lifeboat.mjs'), "console.log('compiled');\n");
    writeFileSync(join(root, 'src/cli/main.ts'), "const from: string = 'sources';\nconsole.log(from);\n");
    for (const p of ['src/cli/main.ts', 'src/cli', 'src']) utimesSync(join(root, p), past, past);
    const run = () => execFileSync(process.execPath, [join(root, 'bin/lifeboat.mjs')], { encoding: 'utf8' }).trim();

    expect(run()).toBe('compiled');
    utimesSync(join(root, 'src/cli/main.ts'), future, future); // edited after the build
    expect(run()).toBe('sources');
    utimesSync(join(root, 'src/cli/main.ts'), past, past);
    expect(run()).toBe('compiled');
    rmSync(join(root, 'dist'), { recursive: true });
    expect(run()).toBe('sources');
  });
});

describe('package-lock.json', () => {
  // `npm ci` (the install step) refuses a lock that does not match package.json, or that lacks any platform's
  // optional package (a lock written through a registry mirror serving only one platform did: "Missing:
  // @swc/core-darwin-arm64 from lock file", then its 60-line usage text). These are the checks it makes.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { optionalDependencies?: Record<string, string> } & Record<string, unknown>>;
  };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;

  it('lists the dependencies package.json lists', () => {
    const root = lock.packages['']!;
    for (const kind of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
      expect(root[kind] ?? {}, `${kind}: run npm install and commit package-lock.json`).toEqual(pkg[kind] ?? {});
    }
  });

  it("holds every platform's optional packages, so npm ci accepts it on any machine", () => {
    const missing: string[] = [];
    for (const [key, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        // Node's lookup: the package's own node_modules, then each enclosing one up to the top.
        let base = key;
        let found = false;
        for (;;) {
          if (lock.packages[`${base ? `${base}/` : ''}node_modules/${name}`]) {
            found = true;
            break;
          }
          if (!base) break;
          const i = base.lastIndexOf('/node_modules/');
          base = i < 0 ? '' : base.slice(0, i);
        }
        if (!found) missing.push(`${name} (optional dependency of ${key || 'the project'})`);
      }
    }
    expect(missing, 'regenerate the lock against the public registry (npm install --package-lock-only)').toEqual([]);
  });
});
