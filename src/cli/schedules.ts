// `lifeboat schedules sync|list|pause|unpause|trigger`: lifeboat.yaml's plan.schedule as Temporal Schedules.
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import type { ScheduleListing, SyncReport } from '../schedules/sync';

// Imported when a command runs, not when it is registered: `lifeboat --help` loads no Temporal client (see main.ts).
const sync = () => import('../schedules/sync');

export function registerScheduleCommands(program: Command, cfgFile: () => string): void {
  const cmd = program.command('schedules').description('Temporal Schedules from plan.schedule in lifeboat.yaml');
  cmd
    .command('sync')
    .description('create, update and delete Lifeboat\'s schedules to match the config (other schedules are never touched)')
    .option('--dry-run', 'print what would change and change nothing')
    .option('--json', 'print the report as JSON')
    .action((o: { dryRun?: boolean; json?: boolean }) =>
      withClient(cfgFile, async (client, config) => {
        const { syncSchedules } = await sync();
        const report = await syncSchedules(client, config, { dryRun: Boolean(o.dryRun) });
        if (o.json) console.log(JSON.stringify(report, null, 2));
        else printReport(report);
        // A desired id held by a schedule Lifeboat does not own is a config problem the user must resolve.
        if (report.conflicts.length > 0) process.exitCode = 1;
      }),
    );
  cmd
    .command('list')
    .description('Lifeboat\'s schedules: cron, time zone, paused, next and recent runs, and whether they match the config')
    .option('--json', 'print a JSON array')
    .action((o: { json?: boolean }) =>
      withClient(cfgFile, async (client, config) => {
        const { listSchedules } = await sync();
        const list = await listSchedules(client, config);
        if (o.json) console.log(JSON.stringify(list, null, 2));
        else printList(list);
      }),
    );
  cmd
    .command('pause <id>')
    .description('stop a schedule from starting runs until unpause (sync keeps it paused)')
    .option('--note <text>', 'why (shown by list and in the Web UI)')
    .action((id: string, o: { note?: string }) => withClient(cfgFile, async (client, config) => (await sync()).pauseSchedule(client, config, id, o.note).then(() => console.log(`paused ${id}`))));
  cmd
    .command('unpause <id>')
    .description('let a paused schedule start runs again')
    .option('--note <text>', 'replaces the pause note')
    .action((id: string, o: { note?: string }) => withClient(cfgFile, async (client, config) => (await sync()).unpauseSchedule(client, config, id, o.note).then(() => console.log(`unpaused ${id}`))));
  cmd
    .command('trigger <id>')
    .description('start the schedule\'s run now; skipped if its previous run is still going (overlap policy SKIP)')
    .action((id: string) => withClient(cfgFile, async (client, config) => (await sync()).triggerSchedule(client, config, id).then(() => console.log(`triggered ${id}`))));
}

async function withClient(cfgFile: () => string, fn: (client: Client, config: Config) => Promise<unknown>): Promise<void> {
  const [{ loadConfig }, { connectClient }] = await Promise.all([import('../config/load'), import('./client')]);
  const config = await loadConfig(cfgFile());
  const client = await connectClient(config.temporal);
  try {
    await fn(client, config);
  } finally {
    await client.connection.close();
  }
}

function printReport(r: SyncReport): void {
  const line = (label: string, ids: string[]) => console.log(`${label.padEnd(10)}${String(ids.length).padStart(3)}${ids.length ? `  ${ids.join(', ')}` : ''}`);
  line(r.dryRun ? 'create' : 'created', r.created);
  line(r.dryRun ? 'update' : 'updated', r.updated);
  line(r.dryRun ? 'delete' : 'deleted', r.deleted);
  line('unchanged', r.unchanged);
  if (r.dryRun) console.log('dry run: nothing changed');
  for (const id of r.conflicts) console.error(`conflict: ${id} exists but is not Lifeboat's on this task queue; left alone, not created`);
  for (const w of r.warnings) console.error(`warning: ${w}`);
}

function printList(list: ScheduleListing[]): void {
  if (list.length === 0) {
    console.log('no schedules (add plan.schedule to lifeboat.yaml, then `lifeboat schedules sync`)');
    return;
  }
  for (const s of list) {
    const state = s.paused ? `PAUSED${s.note ? ` (${s.note})` : ''}` : 'active';
    console.log(`${s.id}  ${s.tier}  ${s.cron ? `"${s.cron}" ${s.timezone ?? ''}` : `every ${s.every ?? '?'}`}  ${state}  [${s.status}]`);
    if (s.nextRuns[0]) console.log(`    next:  ${s.nextRuns.slice(0, 3).join(', ')}`);
    for (const a of s.recentActions.slice(-3)) console.log(`    ran:   ${a.takenAt}  ${a.workflowId}`);
  }
}
