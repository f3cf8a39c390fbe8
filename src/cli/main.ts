// The `lifeboat` command. Thin: parses arguments, reads config, talks to Temporal.
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { loadConfig } from '../config/load';
import { LifeboatError } from '../shared/errors';
import { TIERS, type Tier } from '../shared/types';
import { followBackup, startBackup } from './backup';
import { connectClient } from './client';

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
  .action(async (file?: string) => {
    const path = file ?? cfgFile();
    const config = await loadConfig(path);
    console.log(`${path}: valid (${Object.keys(config.plans).length} plans, ${Object.keys(config.storages).length} storages)`);
  });

program
  .command('worker')
  .description('run the backup-host worker (workflows and activities)')
  .action(async () => {
    const { runWorker } = await import('../workers/worker');
    await runWorker(cfgFile());
  });

program
  .command('backup <plan>')
  .description('start a backup of a plan')
  .addOption(new Option('--tier <tier>', 'why this snapshot exists').choices(TIERS as string[]).default('manual'))
  .option('--wait', 'follow the run, print LIFEBOAT_RESULT:{json}, exit non-zero on failure')
  .action(async (plan: string, opts: { tier: Tier; wait?: boolean }) => {
    const config = await loadConfig(cfgFile());
    if (!config.plans[plan]) throw new LifeboatError('ConfigError', `unknown plan "${plan}" (defined: ${Object.keys(config.plans).join(', ')})`);
    const client = await connectClient(config.temporal);
    const handle = await startBackup(client, config, { plan, tier: opts.tier });
    console.error(`started ${handle.workflowId}`);
    if (opts.wait) process.exitCode = await followBackup(handle);
    await client.connection.close();
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof LifeboatError) {
    console.error(`lifeboat: ${err.code}: ${err.message}`);
    process.exit(err.code === 'ConfigError' ? 2 : 1);
  }
  console.error(`lifeboat: ${(err as Error)?.stack ?? err}`);
  process.exit(1);
});
