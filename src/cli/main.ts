// The `lifeboat` command. Thin: parses arguments, reads config, talks to Temporal.
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { LifeboatError } from '../shared/errors';
import { TIERS, type Tier } from '../shared/types';
import { registerSnapshotCommands } from './snapshots';
import { registerScheduleCommands } from './schedules';
import { registerStatusCommand } from './status';
import { registerKeyCommands } from './keys';

// What a command needs beyond commander is imported inside its action (`await import(...)`), here and in the
// register* modules: `lifeboat --help`, and every command, then load only their own code, not the Temporal client,
// the AWS SDK, zod and YAML for all (--help: ~0.1 s of CPU instead of ~0.8 s). test/unit/cli-startup.test.ts fails
// when src/cli imports a package at start.

function configPath(opt?: string): string {
  if (opt) return opt;
  if (process.env.LIFEBOAT_CONFIG) return process.env.LIFEBOAT_CONFIG;
  return existsSync('lifeboat.yaml') ? 'lifeboat.yaml' : '/etc/lifeboat/lifeboat.yaml';
}

const program = new Command('lifeboat')
  .description('Durable backups and restores for self-hosted stacks, on Temporal')
  .option('-c, --config <file>', 'lifeboat.yaml (default: $LIFEBOAT_CONFIG, ./lifeboat.yaml, /etc/lifeboat/lifeboat.yaml)')
  .showHelpAfterError();

const cfgFile = () => configPath(program.opts<{ config?: string }>().config);

program
  .command('config')
  .description('configuration commands')
  .command('validate [file]')
  .description('check lifeboat.yaml against the schema; errors name the field')
  .option('--check-secrets', 'also resolve every secret reference (env vars set, files present and private)')
  .action(async (file: string | undefined, o: { checkSecrets?: boolean }) => {
    const path = file ?? cfgFile();
    const { loadConfig } = await import('../config/load');
    const config = await loadConfig(path);
    if (o.checkSecrets) {
      const { checkSecrets } = await import('../config/secrets');
      const problems = await checkSecrets(config);
      if (problems.length) throw new LifeboatError('ConfigError', `${path}: secrets:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    }
    console.log(`${path}: valid (${Object.keys(config.plans).length} plans, ${Object.keys(config.storages).length} storages)`);
  });

program
  .command('worker')
  .description('run the backup-host worker (workflows and activities)')
  .addOption(new Option('--log-format <format>', 'text lines, or one JSON object per line (time, level, message, meta)').choices(['text', 'json']).default('text'))
  .action(async (o: { logFormat: 'text' | 'json' }) => {
    const { runWorker } = await import('../workers/worker');
    await runWorker(cfgFile(), { logFormat: o.logFormat });
  });

program
  .command('backup <plan>')
  .description('start a backup of a plan')
  .addOption(new Option('--tier <tier>', 'why this snapshot exists').choices(TIERS as string[]).default('manual'))
  .option('--wait', 'follow the run, print LIFEBOAT_RESULT:{json}, exit non-zero on failure')
  .action(async (plan: string, opts: { tier: Tier; wait?: boolean }) => {
    const [{ getPlan, loadConfig }, { connectClient }, { followBackup, startBackup }] = await Promise.all([import('../config/load'), import('./client'), import('./backup')]);
    const config = await loadConfig(cfgFile());
    getPlan(config, plan);
    const client = await connectClient(config.temporal);
    const handle = await startBackup(client, config, { plan, tier: opts.tier });
    console.error(`started ${handle.workflowId}`);
    if (opts.wait) process.exitCode = await followBackup(handle);
    await client.connection.close();
  });

program
  .command('restore <plan> <snapshot>')
  .description('restore a snapshot (a name, or "latest"): checks the archive and its manifest before touching anything')
  .option('--dry-run', 'print what would go where (and what is in use) and change nothing')
  .option('--source <name>', 'only this source')
  .option('--artifact <name>', 'only this artifact')
  .option('--path <prefix>', 'files: only entries under this absolute path')
  .option('--to-host <source>', "write to this source's host instead of each artifact's own")
  .option('--to-dir <dir>', 'files/sqlite/redis: write under this directory instead of the original paths')
  .option('--database <name>', 'postgres/mysql: restore into this database (created) instead of the original')
  .option('--force', 'write over targets in use (an existing database, a non-empty directory)')
  .option('--no-quiesce', "don't stop the target source's services around the restore")
  .option('--storage <name>', "fetch from this storage (default: the plan's first)")
  .option('--allow-unsigned', 'accept a snapshot without a signature (made before signing was configured)')
  .action(async (plan: string, snapshot: string, o: { dryRun?: boolean; source?: string; artifact?: string; path?: string; toHost?: string; toDir?: string; database?: string; force?: boolean; quiesce: boolean; storage?: string; allowUnsigned?: boolean }) => {
    const [{ getPlan, loadConfig }, { connectClient }, { runRestore }] = await Promise.all([import('../config/load'), import('./client'), import('./restore')]);
    const config = await loadConfig(cfgFile());
    getPlan(config, plan);
    const client = await connectClient(config.temporal);
    process.exitCode = await runRestore(client, config, {
      plan,
      snapshot,
      force: Boolean(o.force),
      dryRun: Boolean(o.dryRun),
      quiesce: o.quiesce,
      ...(o.source ? { source: o.source } : {}),
      ...(o.artifact ? { artifact: o.artifact } : {}),
      ...(o.path ? { pathPrefix: o.path } : {}),
      ...(o.toHost ? { toHost: o.toHost } : {}),
      ...(o.toDir ? { dir: o.toDir } : {}),
      ...(o.database ? { database: o.database } : {}),
      ...(o.storage ? { storage: o.storage } : {}),
      ...(o.allowUnsigned ? { allowUnsigned: true } : {}),
    });
    await client.connection.close();
  });

program
  .command('verify <plan>')
  .description('the restore drill: restore the latest snapshot and random older ones into scratch targets and compare')
  .option('--snapshot <name...>', 'verify exactly these snapshots')
  .option('--storage <name>', "fetch from this storage (default: the plan's first)")
  .option('--allow-unsigned', 'accept snapshots without a signature (made before signing was configured)')
  .action(async (plan: string, o: { snapshot?: string[]; storage?: string; allowUnsigned?: boolean }) => {
    const [{ getPlan, loadConfig }, { connectClient }, { runVerify }] = await Promise.all([import('../config/load'), import('./client'), import('./restore')]);
    const config = await loadConfig(cfgFile());
    getPlan(config, plan);
    const client = await connectClient(config.temporal);
    const extra = { ...(o.snapshot ? { snapshots: o.snapshot } : {}), ...(o.storage ? { storage: o.storage } : {}), ...(o.allowUnsigned ? { allowUnsigned: true } : {}) };
    process.exitCode = await runVerify(client, config, { plan, ...extra });
    await client.connection.close();
  });

registerSnapshotCommands(program, cfgFile);
registerKeyCommands(program);
registerScheduleCommands(program, cfgFile);
registerStatusCommand(program, cfgFile);

program
  .command('predeploy [action]')
  .description('snapshot before a deployment (tier pre-deploy), held until `predeploy verified` or the hold expires')
  .requiredOption('--deploy-id <id>', 'the deployment (e.g. the CI pipeline id); the same id never makes a second snapshot')
  .option('--plan <plan>', 'plan to back up (default: the only plan)')
  .option('--hold <duration>', 'hold against retention for at most this long (e.g. 7d, 12h)', '7d')
  .option('--wait', 'exit once the snapshot is uploaded and checksummed; print its id and LIFEBOAT_RESULT:{json}')
  .action(async (action: string | undefined, o: { deployId: string; plan?: string; hold: string; wait?: boolean }) => {
    if (action && action !== 'verified') throw new LifeboatError('ConfigError', `unknown predeploy action "${action}" (use: verified)`);
    const [{ loadConfig }, { connectClient }, { parseHold, releaseDeploy, startPredeploy, waitForSnapshot }] = await Promise.all([import('../config/load'), import('./client'), import('./predeploy')]);
    const config = await loadConfig(cfgFile());
    const plans = Object.keys(config.plans);
    const plan = o.plan ?? (plans.length === 1 ? plans[0]! : undefined);
    if (!plan || !config.plans[plan]) throw new LifeboatError('ConfigError', `--plan: choose one of ${plans.join(', ')}`);
    const client = await connectClient(config.temporal);
    try {
      if (action === 'verified') {
        process.exitCode = await releaseDeploy(client, plan, o.deployId);
        return;
      }
      const handle = await startPredeploy(client, config, plan, o.deployId, parseHold(o.hold));
      console.error(`pre-deploy run ${handle.workflowId}`);
      if (o.wait) process.exitCode = await waitForSnapshot(handle, config, plan);
    } finally {
      await client.connection.close();
    }
  });

program
  .command('retention')
  .description('retention commands')
  .command('plan <plan>')
  .description('what GFS retention would keep and delete now, per storage (reads storage only)')
  .action(async (plan: string) => {
    const [{ getPlan, loadConfig }, { newestListed, planRetention }, { orphansOf }, { describeRetention }, { openStorage }, { trustPolicyOf }] = await Promise.all([
      import('../config/load'),
      import('../retention/storage-retention'),
      import('../retention/orphans'),
      import('../snapshot/retention'),
      import('../storage'),
      import('../snapshot/signing'),
    ]);
    const config = await loadConfig(cfgFile());
    const p = getPlan(config, plan);
    for (const name of p.storages) {
      const cfg = config.storages[name]!;
      if (!cfg.retention) {
        console.log(`${name}: no retention configured, everything is kept`);
        continue;
      }
      const backend = await openStorage(name, cfg);
      const { decisions, ignored, listing } = await planRetention(backend, plan, cfg.retention, new Date(), await trustPolicyOf(config.signing));
      console.log(`${name}:\n${describeRetention(decisions)}`);
      for (const i of ignored) console.log(`  ignored (never deleted by retention): ${i}`);
      if (cfg.type === 'restic') continue; // restic storages: forgetInRestic finds its orphans by tags
      const { keys, uploads } = await orphansOf(backend, plan, newestListed(listing), new Date());
      for (const key of keys) console.log(`  orphan (no record; deleted by the next retention run): ${key}`);
      for (const u of uploads) console.log(`  unfinished upload (dropped by the next retention run): ${u.key}`);
    }
  });

// Not for users: the worker runs work that moves bulk bytes in a process of its own (src/shared/apart.ts).
program
  .command('internal-apart <task>', { hidden: true })
  .action(async (task: string) => {
    const [{ serveApart }, { APART_TASKS }] = await Promise.all([import('../shared/apart'), import('../workers/apart-tasks')]);
    const load = APART_TASKS[task];
    if (!load) throw new Error(`internal-apart: no task ${task}`);
    await serveApart(task, await load());
    process.exit(0); // a storage's keep-alive sockets would hold the process open
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof LifeboatError) {
    console.error(`lifeboat: ${err.code}: ${err.message}`);
    process.exit(err.code === 'ConfigError' ? 2 : 1);
  }
  // Anything else is a bug: the stack helps a report.
  console.error(`lifeboat: ${(err as Error)?.stack ?? err}`);
  process.exit(1);
});
