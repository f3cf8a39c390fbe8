// GFS (grandfather-father-son) retention: which snapshots to keep. Pure: no I/O, no clock (`now` is a parameter).
//
// Rules, in the order they are applied:
// 1. Order: candidates are sorted newest first by createdAt (ties: by name, descending); decisions come back in that order.
// 2. Future: a snapshot whose createdAt is after `now` (clock skew) is kept ('future') and then set aside: every
//    rule below runs on the other snapshots as if it did not exist, so it takes no calendar slot, no `last` place,
//    and does not count towards `minimum`.
// 3. Calendar (daily / weekly / monthly / yearly = N): periods are calendar periods in `timeZone` (IANA): the local
//    date, the ISO week (keyed by ISO week-year, so 2021-01-01 is '2020-W53'), the local month, the local year.
//    The newest snapshot of each period is kept, for the N most recent periods that HAVE a snapshot (restic/borg:
//    gaps take no slot). Reasons: 'daily 2026-11-22', 'weekly 2026-W47', 'monthly 2026-11', 'yearly 2026'.
// 4. Last = N: the N newest snapshots are kept, whatever the calendar: 'last 1' (the newest) … 'last N'.
// 5. Holds: held === true ('held') or heldUntil after `now` ('held until <instant>') is never removed. A hold whose
//    instant is at or before `now` has expired and protects nothing.
// 6. Newest verified: the newest snapshot with verified === true is kept ('newest verified').
// 7. Minimum (fallback): while fewer than `minimum` snapshots are kept, the newest one not yet kept is kept ('minimum').
// 8. Newest (fallback): the newest snapshot is always kept, so even an all-zero policy keeps the latest ('newest').
// Reasons list every rule that keeps a snapshot, except the fallbacks 7 and 8, which are given only to snapshots that
// nothing else kept. A removed snapshot has no reasons.
//
// Invalid input throws an Error naming every problem: an unknown time zone, a count that is not a non-negative
// integer, an empty or duplicate snapshot name, an instant (createdAt, heldUntil, now) that is not an ISO date-time
// with 'Z' or an offset, or a field of the wrong type.

import { DateTime, IANAZone } from 'luxon';

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
  /** Always keep at least this many of the newest snapshots. */
  minimum: number;
  /** Also keep the N newest regardless of calendar (e.g. a local copy that keeps only the last 2: daily 0… last 2). */
  last: number;
}

export interface RetentionCandidate {
  /** Name, e.g. shop-20261122T031213. */
  snapshot: string;
  /** ISO instant (UTC, or with an offset). */
  createdAt: string;
  /** daily | weekly | monthly | pre-deploy | manual: informational, every tier is treated alike. */
  tier: string;
  /** A restore drill passed on it. */
  verified?: boolean;
  /** A hold (pre-deploy until `predeploy verified` or until this instant); held snapshots are never removed. */
  heldUntil?: string | null;
  /** An explicit hold without expiry. */
  held?: boolean;
}

export interface RetentionDecision {
  snapshot: string;
  keep: boolean;
  reasons: string[];
}

export interface RetentionOptions {
  /** The current instant (ISO); snapshots after it are 'future', holds until it or earlier have expired. */
  now: string;
  /** IANA time zone whose calendar defines days, weeks, months and years, e.g. Europe/Berlin. */
  timeZone: string;
}

const COUNT_FIELDS = ['daily', 'weekly', 'monthly', 'yearly', 'minimum', 'last'] as const;

type Granularity = 'daily' | 'weekly' | 'monthly' | 'yearly';
const GRANULARITIES: readonly Granularity[] = ['daily', 'weekly', 'monthly', 'yearly'];

// A date-time with an explicit zone: a bare local time would mean a different instant on every machine.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;

function parseInstant(value: unknown): DateTime | null {
  if (typeof value !== 'string' || !ISO_INSTANT.test(value)) return null;
  const dt = DateTime.fromISO(value, { zone: 'utc' });
  return dt.isValid ? dt : null;
}

function periodKey(local: DateTime, granularity: Granularity): string {
  switch (granularity) {
    case 'daily':
      return local.toFormat('yyyy-MM-dd');
    case 'weekly':
      // kkkk = ISO week-year, WW = ISO week number (not the calendar year: 2021-01-01 is in 2020-W53).
      return local.toFormat("kkkk-'W'WW");
    case 'monthly':
      return local.toFormat('yyyy-MM');
    case 'yearly':
      return local.toFormat('yyyy');
  }
}

interface Entry {
  candidate: RetentionCandidate;
  at: DateTime; // in opts.timeZone
  ms: number;
  holdUntil: DateTime | null;
  reasons: string[];
  fallback: string | null;
}

export function selectRetention(
  candidates: RetentionCandidate[],
  policy: RetentionPolicy,
  opts: RetentionOptions,
): RetentionDecision[] {
  const problems: string[] = [];

  const timeZone = opts?.timeZone;
  const zoneOk = typeof timeZone === 'string' && IANAZone.isValidZone(timeZone);
  if (!zoneOk) problems.push(`unknown time zone ${JSON.stringify(timeZone)} (want an IANA name such as Europe/Berlin)`);

  const now = parseInstant(opts?.now);
  if (!now) problems.push(`now ${JSON.stringify(opts?.now)} is not an ISO instant with Z or an offset`);

  for (const field of COUNT_FIELDS) {
    const n: unknown = (policy as unknown as Record<string, unknown> | undefined)?.[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      problems.push(`policy.${field} must be a non-negative integer, got ${JSON.stringify(n) ?? String(n)}`);
    }
  }

  if (!Array.isArray(candidates)) {
    problems.push('candidates must be an array');
  }
  const list: RetentionCandidate[] = Array.isArray(candidates) ? candidates : [];
  const seen = new Set<string>();
  const parsed: { candidate: RetentionCandidate; at: DateTime; holdUntil: DateTime | null }[] = [];
  list.forEach((c, i) => {
    const name: unknown = c?.snapshot;
    const label = typeof name === 'string' && name !== '' ? `snapshot ${name}` : `candidate #${i}`;
    if (typeof name !== 'string' || name === '') {
      problems.push(`${label}: snapshot name must be a non-empty string`);
    } else if (seen.has(name)) {
      problems.push(`${label}: duplicate snapshot name`);
    } else {
      seen.add(name);
    }
    const at = parseInstant(c?.createdAt);
    if (!at) problems.push(`${label}: createdAt ${JSON.stringify(c?.createdAt)} is not an ISO instant with Z or an offset`);
    if (typeof c?.tier !== 'string') problems.push(`${label}: tier must be a string`);
    if (c?.verified !== undefined && typeof c.verified !== 'boolean') problems.push(`${label}: verified must be a boolean`);
    if (c?.held !== undefined && typeof c.held !== 'boolean') problems.push(`${label}: held must be a boolean`);
    let holdUntil: DateTime | null = null;
    if (c?.heldUntil !== undefined && c.heldUntil !== null) {
      holdUntil = parseInstant(c.heldUntil);
      if (!holdUntil) {
        problems.push(`${label}: heldUntil ${JSON.stringify(c.heldUntil)} is not an ISO instant with Z or an offset`);
      }
    }
    if (at) parsed.push({ candidate: c, at, holdUntil });
  });

  if (problems.length > 0 || !now || !zoneOk) {
    throw new Error(`invalid retention input: ${problems.join('; ')}`);
  }

  const nowMs = now.toMillis();
  const entries: Entry[] = parsed.map(({ candidate, at, holdUntil }) => ({
    candidate,
    at: at.setZone(timeZone),
    ms: at.toMillis(),
    holdUntil,
    reasons: [],
    fallback: null,
  }));
  entries.sort((a, b) =>
    b.ms !== a.ms ? b.ms - a.ms : a.candidate.snapshot < b.candidate.snapshot ? 1 : a.candidate.snapshot > b.candidate.snapshot ? -1 : 0,
  );

  // 2. Future snapshots: kept, then ignored by every other rule.
  const present: Entry[] = [];
  for (const e of entries) {
    if (e.ms > nowMs) e.reasons.push('future');
    else present.push(e);
  }

  // 3. Calendar periods: the newest snapshot of each of the N most recent periods that have one.
  for (const granularity of GRANULARITIES) {
    const count = policy[granularity];
    const periods = new Set<string>();
    for (const e of present) {
      if (periods.size >= count) break;
      const key = periodKey(e.at, granularity);
      // A Set, not "differs from the previous one": an offset change may move local time back across midnight.
      if (periods.has(key)) continue;
      periods.add(key);
      e.reasons.push(`${granularity} ${key}`);
    }
  }

  // 4. The N newest.
  present.slice(0, policy.last).forEach((e, i) => e.reasons.push(`last ${i + 1}`));

  // 5. Holds.
  for (const e of present) {
    if (e.candidate.held === true) e.reasons.push('held');
    if (e.holdUntil && e.holdUntil.toMillis() > nowMs) {
      e.reasons.push(`held until ${e.holdUntil.toUTC().toISO({ suppressMilliseconds: true })}`);
    }
  }

  // 6. The newest verified snapshot.
  const newestVerified = present.find((e) => e.candidate.verified === true);
  if (newestVerified) newestVerified.reasons.push('newest verified');

  // 7. Minimum: top up with the newest snapshots not kept yet.
  let kept = present.filter((e) => e.reasons.length > 0).length;
  for (const e of present) {
    if (kept >= policy.minimum) break;
    if (e.reasons.length > 0) continue;
    e.fallback = 'minimum';
    kept++;
  }

  // 8. Never remove the newest snapshot.
  const newest = present[0];
  if (newest && newest.reasons.length === 0 && newest.fallback === null) newest.fallback = 'newest';

  return entries.map((e) => {
    const reasons = e.fallback ? [...e.reasons, e.fallback] : e.reasons;
    return { snapshot: e.candidate.snapshot, keep: reasons.length > 0, reasons };
  });
}

/** A short table for `lifeboat retention plan`: one line per decision, in the order given, and a count. */
export function describeRetention(decisions: RetentionDecision[]): string {
  if (decisions.length === 0) return 'no snapshots';
  const width = Math.max('SNAPSHOT'.length, ...decisions.map((d) => d.snapshot.length));
  const lines = [`${'ACTION'.padEnd(6)}  ${'SNAPSHOT'.padEnd(width)}  REASONS`];
  for (const d of decisions) {
    const action = d.keep ? 'keep' : 'remove';
    const reasons = d.reasons.length > 0 ? d.reasons.join(', ') : '-';
    lines.push(`${action.padEnd(6)}  ${d.snapshot.padEnd(width)}  ${reasons}`);
  }
  const keptCount = decisions.filter((d) => d.keep).length;
  lines.push(`${keptCount} kept, ${decisions.length - keptCount} removed`);
  return lines.join('\n');
}
