// `lifeboat status [--json]`: per plan the last good and last verified snapshot (from storage), whether it is
// stale, the run going on and the next scheduled runs (from Temporal, when it answers). Exit 1 when any plan is
// stale, so cron and monitoring can use it; Temporal being down changes nothing about freshness.
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { Config } from '../config/schema';
import { ageMs, formatAge, freshness, isWatched, limitsOf } from '../freshness/freshness';
import type { PlanState } from '../freshness/read-plan-state';
import { formatBytes } from '../shared/units';
import type { RunningRun, ScheduleNext } from './status-temporal';
import { errorLine } from '../shared/errors';
// Storage, config and Temporal code is imported when the command runs: `lifeboat --help` loads none (see main.ts).

export interface PlanStatus {
  plan: string;
  /** Has maxAge or maxVerifiedAge: the watchdog checks it. */
  watched: boolean;
  stale: boolean;
  reasons: string[];
  max_age?: string;
  max_verified_age?: string;
  last_snapshot: { snapshot: string; created_at: string; age_seconds: number; size_bytes: number; status: string; storages: string[] } | null;
  storages: Array<{ storage: string; snapshot?: string; created_at?: string; age_seconds?: number; error?: string }>;
  last_verified: { snapshot: string; created_at: string; age_seconds: number; verified_at: string; restore_seconds?: number; storage: string } | null;
  /** Absent when Temporal could not be asked. */
  running?: RunningRun[];
  schedules?: ScheduleNext[];
}

export interface StatusReport {
  checked_at: string;
  stale: boolean;
  temporal: { reachable: true } | { reachable: false; error: string };
  watchdog?: ScheduleNext;
  plans: PlanStatus[];
  /** Records that did not count (forged, renamed, unsigned): `<storage>:<key>: <reason>`. */
  ignored: string[];
}

export function registerStatusCommand(program: Command, cfgFile: () => string): void {
  program
    .command('status')
    .description('per plan: last snapshot and last verified one (from storage), stale or not, running run, next scheduled runs; exit 1 when a plan is stale')
    .option('--plan <plan>', 'only this plan')
    .option('--json', 'print the report as JSON')
    .action(async (o: { plan?: string; json?: boolean }) => {
      const { getPlan, loadConfig } = await import('../config/load');
      const config = await loadConfig(cfgFile());
      if (o.plan) getPlan(config, o.plan);
      const report = await collectStatus(config, { ...(o.plan ? { plan: o.plan } : {}) });
      if (o.json) console.log(JSON.stringify(report, null, 2));
      else printStatus(report);
      process.exitCode = report.stale ? 1 : 0;
    });
}

/** Storage first (always), then Temporal (best effort). `connect` is for tests. */
export async function collectStatus(config: Config, opts: { plan?: string; now?: Date; connect?: () => Promise<Client> } = {}): Promise<StatusReport> {
  const now = opts.now ?? new Date();
  const names = opts.plan ? [opts.plan] : Object.keys(config.plans);
  const [{ trustPolicyOf }, { backendOpener, readPlanState }] = await Promise.all([import('../snapshot/signing'), import('../freshness/read-plan-state')]);
  const trust = await trustPolicyOf(config.signing);
  const open = backendOpener(config);
  const states = await Promise.all(names.map((plan) => readPlanState(config, plan, trust, open)));
  const plans = states.map((s) => planStatus(config, s, now));
  const report: StatusReport = {
    checked_at: now.toISOString(),
    stale: plans.some((p) => p.stale),
    temporal: { reachable: true },
    plans,
    ignored: states.flatMap((s) => s.ignored.map((i) => `${i.storage}:${i.key}: ${i.reason}`)),
  };
  return addTemporal(report, config, opts.connect ?? (async () => (await import('./client')).connectClient(config.temporal)));
}

function planStatus(config: Config, s: PlanState, now: Date): PlanStatus {
  const plan = config.plans[s.plan]!;
  const f = freshness({ storages: s.storages, ...(s.verified ? { verified: s.verified } : {}), ...limitsOf(plan), now });
  const age = (iso: string) => Math.round(ageMs(iso, now) / 1000);
  const { latest: l, verified: v } = s;
  return {
    plan: s.plan,
    watched: isWatched(plan),
    stale: f.stale,
    reasons: f.reasons,
    ...(plan.maxAge ? { max_age: plan.maxAge } : {}),
    ...(plan.maxVerifiedAge ? { max_verified_age: plan.maxVerifiedAge } : {}),
    last_snapshot: l ? { snapshot: l.snapshot, created_at: l.createdAt, age_seconds: age(l.createdAt), size_bytes: l.sizeBytes, status: l.status, storages: l.storages } : null,
    storages: s.storages.map((x) => ({ storage: x.storage, ...(x.error ? { error: x.error } : {}), ...(x.newest ? { snapshot: x.newest.snapshot, created_at: x.newest.createdAt, age_seconds: age(x.newest.createdAt) } : {}) })),
    last_verified: v
      ? { snapshot: v.snapshot, created_at: v.createdAt, age_seconds: age(v.createdAt), verified_at: v.verifiedAt, storage: v.storage, ...(v.restoreMs !== undefined ? { restore_seconds: v.restoreMs / 1000 } : {}) }
      : null,
  };
}

async function addTemporal(report: StatusReport, config: Config, connect: () => Promise<Client>): Promise<StatusReport> {
  let client: Client;
  try {
    client = await connect();
  } catch (err) {
    return { ...report, temporal: { reachable: false, error: errorLine(err) } };
  }
  try {
    const { planSchedules, runningRuns, watchdogSchedule } = await import('./status-temporal');
    const plans = await Promise.all(report.plans.map(async (p) => ({ ...p, running: await runningRuns(client, p.plan), schedules: await planSchedules(client, config, p.plan) })));
    const watchdog = await watchdogSchedule(client, config);
    return { ...report, plans, ...(watchdog ? { watchdog } : {}) };
  } catch (err) {
    return { ...report, temporal: { reachable: false, error: errorLine(err) } };
  } finally {
    await client.connection.close();
  }
}

// ---------------------------------------------------------------- text

export function printStatus(r: StatusReport, log: (line: string) => void = console.log): void {
  for (const p of r.plans) for (const line of planLines(p, new Date(r.checked_at))) log(line);
  if (r.watchdog) log(`watchdog  ${r.watchdog.id} every ${r.watchdog.every ?? '?'}  ${scheduleState(r.watchdog)}`);
  if (!r.temporal.reachable) log(`temporal  could not be asked (${r.temporal.error}); runs and schedules not shown, freshness is from storage`);
  for (const i of r.ignored) console.error(`ignored ${i}`);
}

function planLines(p: PlanStatus, now: Date): string[] {
  const lines = [`${p.plan}  ${!p.watched ? 'not watched (no maxAge or maxVerifiedAge)' : p.stale ? 'STALE' : 'fresh'}`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(15)}${text}`);
  const l = p.last_snapshot;
  row('last snapshot', l ? `${l.snapshot}  ${formatAge(l.age_seconds * 1000)} ago  ${formatBytes(l.size_bytes)}  ${l.status}  in ${l.storages.join(', ')}` : 'none');
  for (const s of p.storages) if (s.error || (l && s.snapshot !== l.snapshot)) row(`  ${s.storage}`, s.error ? `could not be read: ${s.error}` : s.snapshot ? `newest ${s.snapshot}  ${formatAge((s.age_seconds ?? 0) * 1000)} ago` : 'none');
  const v = p.last_verified;
  row('last verified', v ? `${v.snapshot}  ${formatAge(v.age_seconds * 1000)} ago  ${v.restore_seconds !== undefined ? `restore took ${v.restore_seconds.toFixed(1)} s` : 'restore time not recorded'}  (drill ${formatTime(v.verified_at)})` : `never (run \`lifeboat verify ${p.plan}\`)`);
  if (p.running) row('running', p.running.length ? p.running.map(runText).join('; ') : 'nothing');
  if (p.schedules) row('next runs', p.schedules.length ? p.schedules.map((s) => `${s.tier} ${scheduleState(s)}`).join(' · ') : 'no schedule');
  if (p.watched && !p.stale) row('freshness', `fresh (${limitsText(p)}, checked ${formatTime(now.toISOString())})`);
  // One reason a line: which storage, how old, which limit.
  if (p.stale) p.reasons.forEach((reason, i) => row(i === 0 ? 'stale' : '', reason));
  return lines;
}

const runText = (r: RunningRun) => `${r.workflow_id} ${r.status}${r.pending.length ? `: ${r.pending.join(', ')}` : ''}`;

function scheduleState(s: ScheduleNext): string {
  if (s.state === 'missing') return 'not created (run `lifeboat schedules sync`)';
  if (s.state === 'paused') return 'PAUSED';
  return s.next_runs[0] ? formatTime(s.next_runs[0]) : 'no next run';
}

function limitsText(p: PlanStatus): string {
  return [p.max_age ? `maxAge ${p.max_age}` : '', p.max_verified_age ? `maxVerifiedAge ${p.max_verified_age}` : ''].filter(Boolean).join(', ');
}

function formatTime(iso: string): string {
  return iso.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, 'Z');
}
