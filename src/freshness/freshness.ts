// Freshness (RPO) of one plan, decided from what storage holds. Pure: the watchdog activity and `lifeboat status`
// both call it with the newest good snapshot per storage, so they can never disagree about "stale".
import type { Plan } from '../config/schema';
import { parseDurationMs } from '../shared/units';

/** What one storage holds of a plan: its newest good snapshot, or why it could not be read. */
export interface StorageNewest {
  storage: string;
  newest?: { snapshot: string; createdAt: string };
  /** Listing failed (unreachable, credentials): nothing there can be shown fresh. */
  error?: string;
}

export interface FreshnessInput {
  /** Every storage of the plan, in config order. */
  storages: StorageNewest[];
  /** The newest snapshot (in any storage) that passed a restore drill. */
  verified?: { snapshot: string; createdAt: string };
  /** Durations as written in the config (`26h`) with their value in ms, so reasons quote the config. */
  maxAge?: { text: string; ms: number };
  maxVerifiedAge?: { text: string; ms: number };
  now: Date;
}

export interface Freshness {
  stale: boolean;
  /** One line per broken promise, e.g. "local: newest snapshot web-20261122T031213 is 27h 3m old (maxAge 26h)". */
  reasons: string[];
}

export type Limits = Pick<FreshnessInput, 'maxAge' | 'maxVerifiedAge'>;

/** The plan's limits (the schema has checked the durations). */
export function limitsOf(plan: Pick<Plan, 'maxAge' | 'maxVerifiedAge'>): Limits {
  const limit = (text: string | undefined) => (text === undefined ? undefined : { text, ms: parseDurationMs(text)! });
  const maxAge = limit(plan.maxAge);
  const maxVerifiedAge = limit(plan.maxVerifiedAge);
  return { ...(maxAge ? { maxAge } : {}), ...(maxVerifiedAge ? { maxVerifiedAge } : {}) };
}

/** Whether the watchdog checks the plan at all. */
export function isWatched(plan: Pick<Plan, 'maxAge' | 'maxVerifiedAge'>): boolean {
  return plan.maxAge !== undefined || plan.maxVerifiedAge !== undefined;
}

/**
 * Stale when ANY storage's newest good snapshot is older than maxAge (or it has none, or cannot be read: a snapshot
 * that cannot be shown to exist does not count), or when the newest verified one is older than maxVerifiedAge.
 */
export function freshness(input: FreshnessInput): Freshness {
  const reasons: string[] = [];
  const { maxAge, maxVerifiedAge, now } = input;
  if (maxAge) {
    for (const s of input.storages) {
      const why = storageReason(s, maxAge, now);
      if (why) reasons.push(why);
    }
  }
  if (maxVerifiedAge) {
    const why = verifiedReason(input.verified, maxVerifiedAge, now);
    if (why) reasons.push(why);
  }
  return { stale: reasons.length > 0, reasons };
}

function storageReason(s: StorageNewest, maxAge: { text: string; ms: number }, now: Date): string | undefined {
  if (s.error) return `${s.storage}: could not be read (${s.error}) (maxAge ${maxAge.text})`;
  if (!s.newest) return `${s.storage}: no snapshot (maxAge ${maxAge.text})`;
  const age = ageMs(s.newest.createdAt, now);
  return age > maxAge.ms ? `${s.storage}: newest snapshot ${s.newest.snapshot} is ${formatAge(age)} old (maxAge ${maxAge.text})` : undefined;
}

function verifiedReason(v: FreshnessInput['verified'], max: { text: string; ms: number }, now: Date): string | undefined {
  if (!v) return `no snapshot has passed a restore drill (maxVerifiedAge ${max.text})`;
  const age = ageMs(v.createdAt, now);
  return age > max.ms ? `newest verified snapshot ${v.snapshot} is ${formatAge(age)} old (maxVerifiedAge ${max.text})` : undefined;
}

/** Milliseconds since `iso`; a time in the future (clock skew) counts as 0. */
export function ageMs(iso: string, now: Date): number {
  return Math.max(0, now.getTime() - Date.parse(iso));
}

/** 97_380_000 → "27h 3m"; the two largest units only (seconds below a minute). */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts: Array<[number, string]> = [
    [Math.floor(s / 86_400), 'd'],
    [Math.floor(s / 3600) % 24, 'h'],
    [Math.floor(s / 60) % 60, 'm'],
    [s % 60, 's'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return '0s';
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join(' ');
}
