// Declarative Temporal Schedules: lifeboat.yaml's `plan.schedule` (and, when any plan sets maxAge or
// maxVerifiedAge, the freshness watchdog every `watchdog.every`) is the truth, `syncSchedules` makes the server
// match it. Lifeboat owns a schedule only if its id starts with `lifeboat-` AND its memo names our task queue;
// every other schedule in the namespace is left alone.
import { createHash } from 'node:crypto';
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleOptions,
} from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { Config } from '../config/schema';
import { isWatched } from '../freshness/freshness';
import { LifeboatError } from '../shared/errors';
import { parseDurationMs } from '../shared/units';
import { PLAN, TIER } from '../shared/search-attributes';
import type { BackupInput, VerifyInput } from '../shared/types';

export const SCHEDULE_PREFIX = 'lifeboat-';
/** The freshness watchdog's one schedule (plan ids always end in a tier, so no plan's schedule can take it). */
export const FRESHNESS_SCHEDULE_ID = `${SCHEDULE_PREFIX}freshness`;
/** The watchdog's `plan`: it checks every watched plan. */
const ALL_PLANS = '*';
/** Bump when the shape of what Lifeboat creates changes, so the next sync updates every schedule. */
const FINGERPRINT_VERSION = 2; // 2: runs carry a static summary
const BACKUP_TIERS = ['daily', 'weekly', 'monthly'] as const;

export type ScheduleTier = (typeof BACKUP_TIERS)[number] | 'verify' | 'freshness';

export interface DesiredSchedule {
  id: string;
  /** `*` for the freshness watchdog (every watched plan). */
  plan: string;
  tier: ScheduleTier;
  /** Calendar schedules: backups and drills. */
  cron?: string;
  timezone?: string;
  /** Interval schedules: the freshness watchdog. */
  intervalMs?: number;
  jitterMs: number;
  catchupWindowMs: number;
  workflowType: 'backupPlan' | 'verifyRestore' | 'freshnessWatchdog';
  /** Base id; the server appends the scheduled time to each run's id. */
  workflowId: string;
  args: [BackupInput] | [VerifyInput] | [];
  taskQueue: string;
  /** The watchdog has none: it is no plan's run (status and the Web UI find a plan's runs by LifeboatPlan). */
  searchAttributes: { LifeboatPlan?: string; LifeboatTier?: string };
  /** sha256 of the canonical JSON of everything above. */
  fingerprint: string;
}

export interface ExistingSchedule {
  id: string;
  fingerprint?: string;
  taskQueue?: string;
}

export interface SyncPlan {
  create: DesiredSchedule[];
  update: DesiredSchedule[];
  delete: string[];
  unchanged: string[];
  /** Desired ids taken by a schedule Lifeboat does not own (another task queue, or not made by Lifeboat). */
  conflicts: string[];
}

export interface SyncReport {
  dryRun: boolean;
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
  conflicts: string[];
  warnings: string[];
}

export function durationMs(d: string): number {
  const ms = parseDurationMs(d);
  if (ms === undefined) throw new LifeboatError('ConfigError', `"${d}" is not a duration like 30s, 10m, 6h or 2d`);
  return ms;
}

/** JSON with object keys sorted at every level, so equal definitions hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function scheduleId(plan: string, tier: ScheduleTier): string {
  return `${SCHEDULE_PREFIX}${plan}-${tier}`;
}

/** Every schedule the config asks for, sorted by id. Pure. */
export function desiredSchedules(config: Config): DesiredSchedule[] {
  const out: DesiredSchedule[] = [];
  for (const [plan, p] of Object.entries(config.plans)) {
    const s = p.schedule;
    if (!s) continue;
    for (const tier of [...BACKUP_TIERS, 'verify'] as const) {
      const cron = s[tier];
      if (cron) out.push(desired(config, plan, tier, cron, s));
    }
  }
  const watchdog = watchdogSchedule(config);
  if (watchdog) out.push(watchdog);
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The freshness watchdog, only while some plan sets maxAge or maxVerifiedAge; missed runs are not worth catching up. */
function watchdogSchedule(config: Config): DesiredSchedule | undefined {
  if (!Object.values(config.plans).some(isWatched)) return undefined;
  const every = durationMs(config.watchdog.every);
  return withFingerprint({
    id: FRESHNESS_SCHEDULE_ID,
    plan: ALL_PLANS,
    tier: 'freshness',
    intervalMs: every,
    jitterMs: 0,
    // After an outage, a run missed by less than one interval (a minute at least) still happens; older ones are
    // skipped: the next check covers them.
    catchupWindowMs: Math.max(every, 60_000),
    workflowType: 'freshnessWatchdog',
    workflowId: 'scheduled-freshness',
    args: [],
    taskQueue: config.temporal.taskQueue,
    searchAttributes: {},
  });
}

function withFingerprint(body: Omit<DesiredSchedule, 'fingerprint'>): DesiredSchedule {
  const fingerprint = createHash('sha256').update(canonicalJson({ v: FINGERPRINT_VERSION, overlap: 'SKIP', ...body })).digest('hex');
  return { ...body, fingerprint };
}

function desired(config: Config, plan: string, tier: (typeof BACKUP_TIERS)[number] | 'verify', cron: string, s: NonNullable<Config['plans'][string]['schedule']>): DesiredSchedule {
  const verify = tier === 'verify';
  const body: Omit<DesiredSchedule, 'fingerprint'> = {
    id: scheduleId(plan, tier),
    plan,
    tier,
    cron,
    timezone: s.timezone,
    jitterMs: durationMs(s.jitter),
    catchupWindowMs: durationMs(s.catchupWindow),
    workflowType: verify ? 'verifyRestore' : 'backupPlan',
    workflowId: `scheduled-${plan}-${tier}`,
    args: verify ? [{ plan }] : [{ plan, tier }],
    taskQueue: config.temporal.taskQueue,
    // 'verify' is not a Tier: the drill's runs are found by plan only, like `lifeboat verify`.
    searchAttributes: verify ? { LifeboatPlan: plan } : { LifeboatPlan: plan, LifeboatTier: tier },
  };
  return withFingerprint(body);
}

/** What to do to make `existing` match `desired`. Pure. */
export function planSync(desired: DesiredSchedule[], existing: ExistingSchedule[], taskQueue: string): SyncPlan {
  const owned = (e: ExistingSchedule) => e.id.startsWith(SCHEDULE_PREFIX) && e.taskQueue === taskQueue;
  const byId = new Map(existing.map((e) => [e.id, e]));
  const wanted = new Set(desired.map((d) => d.id));
  const result: SyncPlan = { create: [], update: [], delete: [], unchanged: [], conflicts: [] };
  for (const d of desired) {
    const e = byId.get(d.id);
    if (!e) result.create.push(d);
    else if (!owned(e)) result.conflicts.push(d.id);
    else if (e.fingerprint === d.fingerprint) result.unchanged.push(d.id);
    else result.update.push(d);
  }
  result.delete = existing.filter((e) => owned(e) && !wanted.has(e.id)).map((e) => e.id).sort();
  return result;
}

/**
 * Backup tiers of one plan whose crons share minute and hour fire together on the days they coincide. SKIP only
 * guards a schedule against its own previous run, so both start; the plan lock makes the second wait for the first,
 * which takes two full backups back to back on those days.
 */
export function overlapWarnings(desired: DesiredSchedule[]): string[] {
  const warnings: string[] = [];
  const backups = desired.filter((d) => d.workflowType === 'backupPlan');
  backups.forEach((a, i) => {
    for (const b of backups.slice(i + 1)) {
      if (a.plan === b.plan && timeOfDay(a.cron) === timeOfDay(b.cron)) {
        warnings.push(`plan ${a.plan}: ${a.tier} and ${b.tier} both start at "${timeOfDay(a.cron)}" (minute hour); on days both match, two backups of the plan run back to back (the second waits for the first) — give them different times`);
      }
    }
  });
  return warnings;
}

const timeOfDay = (cron: string | undefined) => (cron ?? '').split(' ').slice(0, 2).join(' ');

// ---------------------------------------------------------------- talking to Temporal

function memoString(memo: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = memo?.[key];
  return typeof v === 'string' ? v : undefined;
}

function toExisting(d: ScheduleDescription): ExistingSchedule {
  // The schedule memo is fixed at creation (UpdateSchedule cannot change it), so the current fingerprint
  // lives in the action's memo, which every update replaces.
  return { id: d.scheduleId, taskQueue: memoString(d.memo, 'lifeboatTaskQueue'), fingerprint: memoString(d.action.memo, 'lifeboatFingerprint') };
}

async function describeOrUndefined(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

/**
 * `lifeboat-*` schedules from the (eventually consistent) list plus the desired ids described directly, so a
 * schedule created a moment ago is never created twice.
 */
async function describeCandidates(client: Client, desiredIds: string[]): Promise<ScheduleDescription[]> {
  const ids = new Set(desiredIds);
  for await (const s of client.schedule.list()) if (s.scheduleId.startsWith(SCHEDULE_PREFIX)) ids.add(s.scheduleId);
  const found = await Promise.all([...ids].map((id) => describeOrUndefined(client, id)));
  return found.filter((d): d is ScheduleDescription => d !== undefined);
}

function actionOf(d: DesiredSchedule): ScheduleOptions['action'] {
  const searchAttributes: SearchAttributePair[] = [];
  if (d.searchAttributes.LifeboatPlan) searchAttributes.push({ key: PLAN, value: d.searchAttributes.LifeboatPlan });
  if (d.searchAttributes.LifeboatTier) searchAttributes.push({ key: TIER, value: d.searchAttributes.LifeboatTier });
  return {
    type: 'startWorkflow',
    workflowType: d.workflowType,
    workflowId: d.workflowId,
    args: d.args,
    taskQueue: d.taskQueue,
    typedSearchAttributes: searchAttributes,
    memo: { lifeboatFingerprint: d.fingerprint },
    // The Web UI shows it on every run the schedule starts: what it is and what started it.
    staticSummary: scheduledSummary(d),
  };
}

function scheduledSummary(d: DesiredSchedule): string {
  if (d.workflowType === 'freshnessWatchdog') return `freshness check of every watched plan (schedule ${d.id})`;
  if (d.workflowType === 'verifyRestore') return `restore drill of plan ${d.plan} (schedule ${d.id})`;
  return `${d.tier} backup of plan ${d.plan} (schedule ${d.id})`;
}

const specOf = (d: DesiredSchedule): ScheduleOptions['spec'] =>
  d.intervalMs !== undefined ? { intervals: [{ every: d.intervalMs }], jitter: d.jitterMs } : { cronExpressions: [d.cron!], timezone: d.timezone!, jitter: d.jitterMs };
const policiesOf = (d: DesiredSchedule): ScheduleOptions['policies'] => ({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: d.catchupWindowMs });

async function createSchedule(client: Client, d: DesiredSchedule): Promise<void> {
  await client.schedule.create({
    scheduleId: d.id,
    spec: specOf(d),
    action: actionOf(d),
    policies: policiesOf(d),
    memo: { lifeboatTaskQueue: d.taskQueue, lifeboatPlan: d.plan, lifeboatTier: d.tier },
  });
}

async function updateSchedule(client: Client, d: DesiredSchedule): Promise<void> {
  // Spec, action, policies and state are replaced as a whole: carry pause state and note over.
  await client.schedule.getHandle(d.id).update((prev) => ({
    spec: specOf(d),
    action: actionOf(d),
    policies: policiesOf(d),
    state: { paused: prev.state.paused, note: prev.state.note, remainingActions: prev.state.remainingActions },
  }));
}

/** Make the server's Lifeboat schedules match the config. A second run right after changes nothing. */
export async function syncSchedules(client: Client, config: Config, opts: { dryRun?: boolean } = {}): Promise<SyncReport> {
  const desired = desiredSchedules(config);
  const existing = (await describeCandidates(client, desired.map((d) => d.id))).map(toExisting);
  const plan = planSync(desired, existing, config.temporal.taskQueue);
  if (!opts.dryRun) {
    for (const d of plan.create) await withId(d.id, () => createSchedule(client, d));
    for (const d of plan.update) await withId(d.id, () => updateSchedule(client, d));
    for (const id of plan.delete) await withId(id, () => client.schedule.getHandle(id).delete());
  }
  return {
    dryRun: Boolean(opts.dryRun),
    created: plan.create.map((d) => d.id),
    updated: plan.update.map((d) => d.id),
    deleted: plan.delete,
    unchanged: plan.unchanged,
    conflicts: plan.conflicts,
    warnings: overlapWarnings(desired),
  };
}

/** The server rejects what the schema cannot check (e.g. minute 61, an unknown time zone): name the schedule. */
async function withId(id: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    // The SDK turns the server's INVALID_ARGUMENT into a TypeError.
    throw new LifeboatError(err instanceof TypeError ? 'ConfigError' : 'CommandFailed', `schedule ${id}: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------- inspecting and operating

export interface ScheduleListing {
  id: string;
  plan: string;
  tier: string;
  /** From the config: the server keeps only the compiled calendar. */
  cron?: string;
  timezone?: string;
  /** Interval schedules (the freshness watchdog), e.g. `10m`. */
  every?: string;
  /** in-sync; out-of-date (config changed, run sync); not-in-config (sync deletes it); missing (sync creates it). */
  status: 'in-sync' | 'out-of-date' | 'not-in-config' | 'missing';
  paused: boolean;
  note?: string;
  nextRuns: string[];
  recentActions: Array<{ scheduledAt: string; takenAt: string; workflowId: string }>;
}

/** Lifeboat's schedules (and the configured ones not created yet), sorted by id. */
export async function listSchedules(client: Client, config: Config): Promise<ScheduleListing[]> {
  const desired = new Map(desiredSchedules(config).map((d) => [d.id, d]));
  const owned = (await describeCandidates(client, [...desired.keys()])).filter((d) => isOwned(d, config));
  const listed = owned.map((d) => listing(d, desired.get(d.scheduleId)));
  const present = new Set(listed.map((l) => l.id));
  for (const d of desired.values()) {
    if (!present.has(d.id)) listed.push({ id: d.id, plan: d.plan, tier: d.tier, ...when(d), status: 'missing', paused: false, nextRuns: [], recentActions: [] });
  }
  return listed.sort((a, b) => a.id.localeCompare(b.id));
}

function listing(d: ScheduleDescription, want: DesiredSchedule | undefined): ScheduleListing {
  const fingerprint = memoString(d.action.memo, 'lifeboatFingerprint');
  return {
    id: d.scheduleId,
    plan: memoString(d.memo, 'lifeboatPlan') ?? '?',
    tier: memoString(d.memo, 'lifeboatTier') ?? '?',
    ...(want?.cron ? { cron: want.cron } : {}),
    ...(d.spec.timezone ? { timezone: d.spec.timezone } : {}),
    ...(d.spec.intervals?.[0] ? { every: intervalText(d.spec.intervals[0].every) } : {}),
    status: !want ? 'not-in-config' : want.fingerprint === fingerprint ? 'in-sync' : 'out-of-date',
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), takenAt: a.takenAt.toISOString(), workflowId: a.action.workflow.workflowId })),
  };
}

function when(d: DesiredSchedule): Pick<ScheduleListing, 'cron' | 'timezone' | 'every'> {
  if (d.intervalMs !== undefined) return { every: intervalText(d.intervalMs) };
  return { ...(d.cron ? { cron: d.cron } : {}), ...(d.timezone ? { timezone: d.timezone } : {}) };
}

/** 600000 → "10m": the largest unit that divides it, as the config writes durations. */
export function intervalText(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${Math.round(ms / 1000)}s`;
}

function isOwned(d: ScheduleDescription, config: Config): boolean {
  return d.scheduleId.startsWith(SCHEDULE_PREFIX) && memoString(d.memo, 'lifeboatTaskQueue') === config.temporal.taskQueue;
}

/** A handle on one of Lifeboat's own schedules; anything else is a ConfigError naming the ones that exist. */
export async function ownedSchedule(client: Client, config: Config, id: string): Promise<{ handle: ScheduleHandle; description: ScheduleDescription }> {
  const d = await describeOrUndefined(client, id);
  if (d && isOwned(d, config)) return { handle: client.schedule.getHandle(id), description: d };
  const known = (await describeCandidates(client, [])).filter((c) => isOwned(c, config)).map((c) => c.scheduleId).sort();
  throw new LifeboatError('ConfigError', `no Lifeboat schedule "${id}" on task queue ${config.temporal.taskQueue} (known: ${known.join(', ') || 'none; run `lifeboat schedules sync`'})`);
}

/** Start the schedule's action now, under the schedule's own overlap policy (SKIP if a run is still going). */
export async function triggerSchedule(client: Client, config: Config, id: string): Promise<void> {
  const { handle, description } = await ownedSchedule(client, config, id);
  await handle.trigger(description.policies.overlap);
}

export async function pauseSchedule(client: Client, config: Config, id: string, note?: string): Promise<void> {
  await (await ownedSchedule(client, config, id)).handle.pause(note ?? 'paused with `lifeboat schedules pause`');
}

export async function unpauseSchedule(client: Client, config: Config, id: string, note?: string): Promise<void> {
  await (await ownedSchedule(client, config, id)).handle.unpause(note ?? 'unpaused with `lifeboat schedules unpause`');
}
