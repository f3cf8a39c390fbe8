// `npm run bench`: the whole job measured side by side with the hand-written shell sequence and with plain restic,
// on a generated, deterministic workload (scripts/bench/e2e.ts), plus two stage micro-benches: the archive pass
// (scripts/bench/archive.ts) and manifest hashing (scripts/bench-hash.ts).
//   npm run bench                       2 hosts × 500 MiB, a ~150 MiB dump, 3 interleaved runs (tens of minutes)
//   npm run bench -- --quick            8 MiB per host, 4 MiB dump, 5 tiny hosts, 1 run: checks the bench works (~2 min)
//   npm run bench -- --mib-per-host 200 --db-mib 50 --runs 5 --tiny-hosts 20 --archive-mib 256
//   npm run bench -- --only e2e         sections: e2e, archive, hash (comma-separated)
//   npm run bench -- --methods lifeboat,restic   e2e methods to run: shell, restic, lifeboat, lifeboat-restic, lifeboat-media
//   npm run bench -- --days 7           daily runs (1 % change a day) into a fresh restic repository: what a week
//                                       occupies against one full copy (default 7; 0 with --quick)
//   npm run bench -- --steps            log each Lifeboat backup's activity times (from its workflow history)
//   BENCH_WORKER_NODE_OPTIONS='--max-old-space-size=96' npm run bench …   the Lifeboat worker's own Node options
//                                       (memory experiments; nothing else in the bench gets them)
//   npm run bench -- --keep             leave the work dir (worker, sshd, MinIO, Temporal logs) in $TMPDIR
// Progress goes to stderr, the results to stdout.
import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchHash } from './bench-hash';
import { archiveBench } from './bench/archive';
import { e2eBench } from './bench/e2e';
import { cleanupAll, installSignalHandlers, onCleanup } from './bench/stack';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'mib-per-host': { type: 'string' },
    'db-mib': { type: 'string' },
    runs: { type: 'string' },
    'tiny-hosts': { type: 'string' },
    'archive-mib': { type: 'string' },
    mib: { type: 'string' }, // the archive bench's old flag
    only: { type: 'string' },
    methods: { type: 'string' },
    keep: { type: 'boolean', default: false },
    steps: { type: 'boolean', default: false },
    days: { type: 'string' },
  },
});

const num = (v: string | undefined, dflt: number, name: string): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: a positive number, got "${v}"`);
  return n;
};
const quick = values.quick!;
const opts = {
  mibPerHost: num(values['mib-per-host'], quick ? 8 : 500, 'mib-per-host'),
  dbMib: num(values['db-mib'], quick ? 4 : 150, 'db-mib'),
  runs: Math.max(1, Math.round(num(values.runs, quick ? 1 : 3, 'runs'))),
  tinyHosts: Math.round(num(values['tiny-hosts'], quick ? 5 : 20, 'tiny-hosts')),
  archiveMib: Math.round(num(values['archive-mib'] ?? values.mib, quick ? 32 : 256, 'archive-mib')),
  days: values.days === '0' ? 0 : Math.round(num(values.days, quick ? 0 : 7, 'days')),
};
const sections = new Set((values.only ?? 'e2e,archive,hash').split(',').map((s) => s.trim()));
const log = (line: string) => console.error(line);

/** scripts/bench-hash.ts (manifest hashing in a loaded worker vs sha256sum) prints its own table: captured here. */
async function hashSection(): Promise<string[]> {
  const lines: string[] = [];
  const print = console.log;
  // Its temp dir is removed in its own `finally`, which a Ctrl-C (process.exit in our handler) skips: remove what
  // appeared under $TMPDIR with its prefix while it ran.
  const before = new Set(readdirSync(tmpdir()).filter((e) => e.startsWith('lifeboat-bench-hash-')));
  let running = true;
  onCleanup(async () => {
    if (!running) return;
    for (const e of readdirSync(tmpdir())) if (e.startsWith('lifeboat-bench-hash-') && !before.has(e)) await rm(join(tmpdir(), e), { recursive: true, force: true });
  });
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(' '));
  try {
    await benchHash({ gib: quick ? 0.125 : 1, runs: quick ? 1 : opts.runs });
  } finally {
    console.log = print;
    running = false;
  }
  return lines;
}

async function main(): Promise<void> {
  installSignalHandlers();
  const started = Date.now();
  const report: Array<[string, string[]]> = [];
  let problems: string[] = [];
  log(`lifeboat bench${quick ? ' --quick' : ''}: ${JSON.stringify(opts)}, sections ${[...sections].join(',')}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  try {
    // The micro-benches first: the archive bench reports this process's own peak RSS, which the e2e setup would raise.
    const section = (name: string) => log(`— ${name} (at ${((Date.now() - started) / 1000).toFixed(0)} s)`);
    if (sections.has('archive')) {
      section('archive micro-bench');
      report.push(['archive stage: tar | zstd -T0 (+ age) vs tar czf + sha256sum', await archiveBench({ mib: opts.archiveMib, runs: quick ? 1 : opts.runs })]);
    }
    if (sections.has('hash')) {
      section('hashing micro-bench');
      report.push(['manifest hashing: Lifeboat in a loaded process vs sha256sum (scripts/bench-hash.ts)', await hashSection()]);
    }
    if (sections.has('e2e')) {
      section('end to end: shell vs restic vs Lifeboat');
      const e2e = await e2eBench({ mibPerHost: opts.mibPerHost, dbMib: opts.dbMib, runs: opts.runs, tinyHosts: opts.tinyHosts, keep: values.keep, steps: values.steps, days: opts.days, log, ...(values.methods ? { methods: values.methods.split(',').map((m) => m.trim()) } : {}) });
      report.unshift(['the whole job: hand-written shell vs plain restic vs Lifeboat', e2e.lines]);
      problems = e2e.problems;
    }
  } finally {
    log('— cleaning up');
    await cleanupAll();
  }
  for (const [title, lines] of report) {
    console.log(`\n== ${title}`);
    for (const l of lines) console.log(l);
  }
  console.log(`\nbench finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (problems.length) {
    console.log(`\nPROBLEMS (a restore did not bring back what the source holds):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    process.exitCode = 1;
  }
}

main().catch(async (err) => {
  // A failed workflow says why in its cause (a Lifeboat error type and message).
  let cause = (err as { cause?: unknown })?.cause;
  let why = '';
  while (cause) {
    why += `\n  caused by: ${(cause as { type?: string }).type ?? (cause as Error).name}: ${(cause as Error).message}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  console.error(`bench failed: ${(err as Error)?.stack ?? err}${why}`);
  await cleanupAll();
  process.exit(1);
});
