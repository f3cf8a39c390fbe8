import { describe, it, expect } from 'vitest';
import {
  selectRetention,
  describeRetention,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
} from '../../src/snapshot/retention';

const ZERO: RetentionPolicy = { daily: 0, weekly: 0, monthly: 0, yearly: 0, minimum: 0, last: 0 };
const policy = (p: Partial<RetentionPolicy>): RetentionPolicy => ({ ...ZERO, ...p });
const FAR_FUTURE = '2099-01-01T00:00:00Z';

/** A candidate named after its instant, e.g. at('2025-06-01T23:30:00Z') is named '2025-06-01T23:30:00Z'. */
const at = (createdAt: string, extra: Partial<RetentionCandidate> = {}): RetentionCandidate => ({
  snapshot: createdAt,
  createdAt,
  tier: 'daily',
  ...extra,
});

function run(
  candidates: RetentionCandidate[],
  p: Partial<RetentionPolicy>,
  timeZone = 'UTC',
  now = FAR_FUTURE,
): RetentionDecision[] {
  return selectRetention(candidates, policy(p), { now, timeZone });
}

/** The kept snapshots, newest first, with their reasons. */
const kept = (decisions: RetentionDecision[]): Record<string, string[]> =>
  Object.fromEntries(decisions.filter((d) => d.keep).map((d) => [d.snapshot, d.reasons]));

describe('selectRetention: a hand-worked year (Europe/Berlin, daily 7, weekly 4, monthly 12)', () => {
  // Input: one snapshot a day, 2025-01-01 .. 2025-12-31, taken at 02:30 Berlin time and recorded in UTC:
  // 01:30Z in winter (CET, +01:00), 00:30Z in summer (CEST, +02:00, local days 2025-03-31 .. 2025-10-25).
  // On 2025-03-30 02:30 does not exist (02:00 jumps to 03:00): that run is at 01:30Z = 03:30 CEST, still 03-30.
  // On 2025-10-26 02:30 happens twice: the run is at 01:30Z = the second 02:30 (CET), still 10-26.
  // Missing (15 days, so 350 snapshots):
  //   2025-01-31                     January's last day
  //   2025-04-29, 2025-04-30         April's last two days
  //   2025-06-15, 2025-09-02         gaps that change nothing
  //   2025-08-31                     August's last day
  //   2025-12-08 .. 2025-12-14       the whole ISO week 2025-W50
  //   2025-12-24, 2025-12-28         two days inside the last ten
  const missing = new Set([
    '2025-01-31', '2025-04-29', '2025-04-30', '2025-06-15', '2025-09-02', '2025-08-31',
    '2025-12-08', '2025-12-09', '2025-12-10', '2025-12-11', '2025-12-12', '2025-12-13', '2025-12-14',
    '2025-12-24', '2025-12-28',
  ]);
  const year: RetentionCandidate[] = [];
  for (let ms = Date.UTC(2025, 0, 1); ms <= Date.UTC(2025, 11, 31); ms += 86_400_000) {
    const date = new Date(ms).toISOString().slice(0, 10);
    if (missing.has(date)) continue;
    const hour = date >= '2025-03-31' && date <= '2025-10-25' ? '00' : '01';
    year.push({
      snapshot: `shop-${date.replace(/-/g, '')}T${hour}3000`,
      createdAt: `${date}T${hour}:30:00Z`,
      tier: 'daily',
    });
  }

  // Hand-worked (the calendar: 2025-01-01 and 2025-12-31 are Wednesdays; ISO weeks run Monday..Sunday, and
  // 2025-12-29 .. 2026-01-04 is 2026-W01 because it holds Thursday 2026-01-01; 2025-W49 is Dec 1..7, W50 Dec 8..14,
  // W51 Dec 15..21, W52 Dec 22..28).
  // daily 7: the 7 newest days that have a snapshot, skipping the missing 12-28 and 12-24:
  //   12-31, 12-30, 12-29, 12-27, 12-26, 12-25, 12-23.
  // weekly 4: the newest snapshot of the 4 newest ISO weeks that have one:
  //   2026-W01 -> 12-31 (its 2025 part is Mon 12-29 .. Wed 12-31),
  //   2025-W52 -> 12-27 (Sunday 12-28 is missing),
  //   2025-W51 -> 12-21 (Sunday),
  //   2025-W50 has no snapshot, so it takes no slot,
  //   2025-W49 -> 12-07 (Sunday).
  // monthly 12: the newest snapshot of each month (all 12 months have one):
  //   12 -> 12-31, 11 -> 11-30, 10 -> 10-31, 09 -> 09-30, 08 -> 08-30 (31 missing), 07 -> 07-31, 06 -> 06-30,
  //   05 -> 05-31, 04 -> 04-28 (29 and 30 missing), 03 -> 03-31, 02 -> 02-28 (2025 is no leap year),
  //   01 -> 01-30 (31 missing).
  // Union: 7 daily + 2 more weekly (12-21, 12-07) + 11 more monthly (all but 12-31) = 20 kept, 330 removed.
  // Summer dates (03-31 .. 10-25) carry 00:30Z in their names, the others 01:30Z.
  const expected: Record<string, string[]> = {
    'shop-20251231T013000': ['daily 2025-12-31', 'weekly 2026-W01', 'monthly 2025-12'],
    'shop-20251230T013000': ['daily 2025-12-30'],
    'shop-20251229T013000': ['daily 2025-12-29'],
    'shop-20251227T013000': ['daily 2025-12-27', 'weekly 2025-W52'],
    'shop-20251226T013000': ['daily 2025-12-26'],
    'shop-20251225T013000': ['daily 2025-12-25'],
    'shop-20251223T013000': ['daily 2025-12-23'],
    'shop-20251221T013000': ['weekly 2025-W51'],
    'shop-20251207T013000': ['weekly 2025-W49'],
    'shop-20251130T013000': ['monthly 2025-11'],
    'shop-20251031T013000': ['monthly 2025-10'],
    'shop-20250930T003000': ['monthly 2025-09'],
    'shop-20250830T003000': ['monthly 2025-08'],
    'shop-20250731T003000': ['monthly 2025-07'],
    'shop-20250630T003000': ['monthly 2025-06'],
    'shop-20250531T003000': ['monthly 2025-05'],
    'shop-20250428T003000': ['monthly 2025-04'],
    'shop-20250331T003000': ['monthly 2025-03'],
    'shop-20250228T013000': ['monthly 2025-02'],
    'shop-20250130T013000': ['monthly 2025-01'],
  };

  it('keeps exactly the hand-worked list', () => {
    expect(year).toHaveLength(350);
    const decisions = selectRetention(year, policy({ daily: 7, weekly: 4, monthly: 12 }), {
      now: '2026-01-01T12:00:00Z',
      timeZone: 'Europe/Berlin',
    });
    expect(decisions).toHaveLength(350);
    expect(kept(decisions)).toEqual(expected);
    // The kept ones come back in newest-first order too.
    expect(decisions.filter((d) => d.keep).map((d) => d.snapshot)).toEqual(Object.keys(expected));
    expect(decisions.filter((d) => !d.keep)).toHaveLength(330);
    expect(decisions.filter((d) => !d.keep).every((d) => d.reasons.length === 0)).toBe(true);
  });

  it('gives the same answer whatever order the candidates come in, newest first', () => {
    // i -> i * 7919 mod 350 is a permutation (7919 is prime and does not divide 350).
    const shuffled = year.map((_, i) => year[(i * 7919) % year.length]!);
    expect(new Set(shuffled.map((c) => c.snapshot)).size).toBe(350);
    const decisions = selectRetention(shuffled, policy({ daily: 7, weekly: 4, monthly: 12 }), {
      now: '2026-01-01T12:00:00Z',
      timeZone: 'Europe/Berlin',
    });
    expect(kept(decisions)).toEqual(expected);
    const names = decisions.map((d) => d.snapshot);
    expect(names).toEqual(year.map((c) => c.snapshot).reverse());
  });
});

describe('selectRetention: calendar edges', () => {
  it('month ends and the leap day: the newest of each month, 2024-02-29 is February', () => {
    const c = [
      at('2023-12-31T12:00:00Z'),
      at('2024-01-31T12:00:00Z'),
      at('2024-02-28T12:00:00Z'),
      at('2024-02-29T12:00:00Z'),
      at('2024-03-01T12:00:00Z'),
      at('2024-03-31T12:00:00Z'),
      at('2024-04-30T12:00:00Z'),
    ];
    expect(kept(run(c, { monthly: 4, yearly: 2 }))).toEqual({
      '2024-04-30T12:00:00Z': ['monthly 2024-04', 'yearly 2024'],
      '2024-03-31T12:00:00Z': ['monthly 2024-03'],
      '2024-02-29T12:00:00Z': ['monthly 2024-02'],
      '2024-01-31T12:00:00Z': ['monthly 2024-01'],
      '2023-12-31T12:00:00Z': ['yearly 2023'],
    });
    expect(kept(run(c, { daily: 4 }))).toEqual({
      '2024-04-30T12:00:00Z': ['daily 2024-04-30'],
      '2024-03-31T12:00:00Z': ['daily 2024-03-31'],
      '2024-03-01T12:00:00Z': ['daily 2024-03-01'],
      '2024-02-29T12:00:00Z': ['daily 2024-02-29'],
    });
  });

  it('ISO week-year: 2020-12-31 and 2021-01-01 are both 2020-W53 (calendar years differ)', () => {
    const c = [
      at('2020-12-27T12:00:00Z'), // Sunday, 2020-W52
      at('2020-12-28T12:00:00Z'), // Monday, 2020-W53
      at('2020-12-31T12:00:00Z'), // Thursday, 2020-W53
      at('2021-01-01T12:00:00Z'), // Friday, 2020-W53 (newest of that week)
      at('2021-01-04T12:00:00Z'), // Monday, 2021-W01
    ];
    expect(kept(run(c, { weekly: 3, yearly: 2 }))).toEqual({
      '2021-01-04T12:00:00Z': ['weekly 2021-W01', 'yearly 2021'],
      '2021-01-01T12:00:00Z': ['weekly 2020-W53'],
      '2020-12-31T12:00:00Z': ['yearly 2020'],
      '2020-12-27T12:00:00Z': ['weekly 2020-W52'],
    });
    // 2024-12-30 opens 2025-W01 (the 2025 year-end case is in the hand-worked year).
    expect(kept(run([at('2024-12-29T12:00:00Z'), at('2024-12-30T12:00:00Z')], { weekly: 2 }))).toEqual({
      '2024-12-30T12:00:00Z': ['weekly 2025-W01'],
      '2024-12-29T12:00:00Z': ['weekly 2024-W52'],
    });
  });

  it('irregular gaps take no slot: daily 3 reaches back weeks', () => {
    const c = [
      at('2025-02-27T08:00:00Z'),
      at('2025-03-01T08:00:00Z'),
      at('2025-03-05T08:00:00Z'),
      at('2025-03-20T08:00:00Z'),
      at('2025-04-11T08:00:00Z'),
    ];
    expect(kept(run(c, { daily: 3, monthly: 2 }))).toEqual({
      '2025-04-11T08:00:00Z': ['daily 2025-04-11', 'monthly 2025-04'],
      '2025-03-20T08:00:00Z': ['daily 2025-03-20', 'monthly 2025-03'],
      '2025-03-05T08:00:00Z': ['daily 2025-03-05'],
    });
  });

  it('several snapshots a day: only the newest of the day is that day\'s daily', () => {
    const c = [
      at('2025-05-10T14:00:00Z'),
      at('2025-05-09T06:00:00Z'),
      at('2025-05-10T20:00:00Z'),
      at('2025-05-10T08:00:00Z'),
      at('2025-05-09T22:00:00Z'),
      at('2025-05-08T22:00:00Z'),
    ];
    const d = run(c, { daily: 2 });
    expect(d.map((x) => [x.snapshot, x.keep])).toEqual([
      ['2025-05-10T20:00:00Z', true],
      ['2025-05-10T14:00:00Z', false],
      ['2025-05-10T08:00:00Z', false],
      ['2025-05-09T22:00:00Z', true],
      ['2025-05-09T06:00:00Z', false],
      ['2025-05-08T22:00:00Z', false],
    ]);
    expect(kept(d)).toEqual({
      '2025-05-10T20:00:00Z': ['daily 2025-05-10'],
      '2025-05-09T22:00:00Z': ['daily 2025-05-09'],
    });
  });

  it('counts larger than the history keep every period once', () => {
    const c = [at('2025-05-10T14:00:00Z'), at('2025-05-10T20:00:00Z'), at('2025-05-11T01:00:00Z')];
    expect(kept(run(c, { daily: 100 }))).toEqual({
      '2025-05-11T01:00:00Z': ['daily 2025-05-11'],
      '2025-05-10T20:00:00Z': ['daily 2025-05-10'],
    });
  });

  it('accepts instants with an offset and orders by instant, not by text', () => {
    // 2025-05-10T23:00:00-03:00 is 2025-05-11T02:00Z: newer than 2025-05-11T01:00Z.
    const c = [at('2025-05-11T01:00:00Z'), at('2025-05-10T23:00:00-03:00')];
    expect(run(c, { last: 1 }).map((d) => [d.snapshot, d.reasons])).toEqual([
      ['2025-05-10T23:00:00-03:00', ['last 1']],
      ['2025-05-11T01:00:00Z', []],
    ]);
  });
});

describe('selectRetention: time zones and DST', () => {
  it('23:30 UTC is the next local day in Europe/Berlin; UTC gives a different answer', () => {
    const c = [
      at('2025-06-01T21:00:00Z'), // Berlin 06-01 23:00 | UTC 06-01
      at('2025-06-01T23:30:00Z'), // Berlin 06-02 01:30 | UTC 06-01
      at('2025-06-02T20:00:00Z'), // Berlin 06-02 22:00 | UTC 06-02
    ];
    expect(kept(run(c, { daily: 2 }, 'Europe/Berlin'))).toEqual({
      '2025-06-02T20:00:00Z': ['daily 2025-06-02'],
      '2025-06-01T21:00:00Z': ['daily 2025-06-01'],
    });
    expect(kept(run(c, { daily: 2 }, 'UTC'))).toEqual({
      '2025-06-02T20:00:00Z': ['daily 2025-06-02'],
      '2025-06-01T23:30:00Z': ['daily 2025-06-01'],
    });
  });

  it('weeks and years follow the local calendar too', () => {
    const c = [
      at('2025-12-28T12:00:00Z'), // Sunday everywhere: 2025-W52
      at('2025-12-28T23:30:00Z'), // UTC: Sunday 2025-W52 | Berlin: Monday 2025-12-29, 2026-W01
      at('2025-12-31T12:00:00Z'), // 2026-W01 in both
      at('2025-12-31T23:30:00Z'), // UTC: 2025 | Berlin: 2026-01-01
    ];
    expect(kept(run(c, { weekly: 2, yearly: 2 }, 'Europe/Berlin'))).toEqual({
      '2025-12-31T23:30:00Z': ['weekly 2026-W01', 'yearly 2026'],
      '2025-12-31T12:00:00Z': ['yearly 2025'],
      '2025-12-28T12:00:00Z': ['weekly 2025-W52'],
    });
    expect(kept(run(c, { weekly: 2, yearly: 2 }, 'UTC'))).toEqual({
      '2025-12-31T23:30:00Z': ['weekly 2026-W01', 'yearly 2025'],
      '2025-12-28T23:30:00Z': ['weekly 2025-W52'],
    });
  });

  it('spring forward (2025-03-30, a 23-hour day in Berlin) neither merges nor splits days', () => {
    // Berlin's 2025-03-30 runs from 03-29T23:00Z to 03-30T22:00Z.
    const c = [
      at('2025-03-29T22:30:00Z'), // Berlin 03-29 23:30 CET
      at('2025-03-29T23:30:00Z'), // Berlin 03-30 00:30 CET
      at('2025-03-30T21:30:00Z'), // Berlin 03-30 23:30 CEST (a fixed +01:00 would say 22:30, fine; +02:00 too)
      at('2025-03-30T22:30:00Z'), // Berlin 03-31 00:30 CEST (a fixed +01:00 would wrongly say 03-30 23:30)
    ];
    expect(kept(run(c, { daily: 10 }, 'Europe/Berlin'))).toEqual({
      '2025-03-30T22:30:00Z': ['daily 2025-03-31'],
      '2025-03-30T21:30:00Z': ['daily 2025-03-30'],
      '2025-03-29T22:30:00Z': ['daily 2025-03-29'],
    });
    expect(kept(run(c, { daily: 10 }, 'UTC'))).toEqual({
      '2025-03-30T22:30:00Z': ['daily 2025-03-30'],
      '2025-03-29T23:30:00Z': ['daily 2025-03-29'],
    });
  });

  it('fall back (2025-10-26, a 25-hour day in Berlin, 02:30 twice) neither merges nor splits days', () => {
    // Berlin's 2025-10-26 runs from 10-25T22:00Z to 10-26T23:00Z.
    const c = [
      at('2025-10-25T21:30:00Z'), // Berlin 10-25 23:30 CEST
      at('2025-10-25T22:30:00Z'), // Berlin 10-26 00:30 CEST (a fixed +01:00 would wrongly say 10-25 23:30)
      at('2025-10-26T00:30:00Z'), // Berlin 10-26 02:30 CEST (the first 02:30)
      at('2025-10-26T01:30:00Z'), // Berlin 10-26 02:30 CET (the second 02:30)
      at('2025-10-26T22:30:00Z'), // Berlin 10-26 23:30 CET (a fixed +02:00 would wrongly say 10-27 00:30)
      at('2025-10-26T23:30:00Z'), // Berlin 10-27 00:30 CET
    ];
    expect(kept(run(c, { daily: 10 }, 'Europe/Berlin'))).toEqual({
      '2025-10-26T23:30:00Z': ['daily 2025-10-27'],
      '2025-10-26T22:30:00Z': ['daily 2025-10-26'],
      '2025-10-25T21:30:00Z': ['daily 2025-10-25'],
    });
    expect(kept(run(c, { daily: 10 }, 'UTC'))).toEqual({
      '2025-10-26T23:30:00Z': ['daily 2025-10-26'],
      '2025-10-25T22:30:00Z': ['daily 2025-10-25'],
    });
  });
});

describe('selectRetention: safety rules', () => {
  const NOW = '2025-06-10T12:00:00Z';

  it('never removes a held snapshot (held, or heldUntil after now); an expired hold protects nothing', () => {
    const c = [
      at('2025-06-10T03:00:00Z'),
      at('2025-06-09T03:00:00Z', { held: true, tier: 'manual' }),
      at('2025-06-08T03:00:00Z', { heldUntil: '2025-06-11T00:00:00.000Z', tier: 'pre-deploy' }),
      at('2025-06-07T03:00:00Z', { heldUntil: '2025-06-10T11:59:59Z', tier: 'pre-deploy' }), // expired
      at('2025-06-06T03:00:00Z', { heldUntil: NOW }), // expires at now
      at('2025-06-05T03:00:00Z', { heldUntil: null, held: false }),
      at('2024-01-01T03:00:00Z', { held: true, heldUntil: '2030-01-01T00:00:00+01:00' }),
    ];
    expect(kept(run(c, { daily: 1 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['daily 2025-06-10'],
      '2025-06-09T03:00:00Z': ['held'],
      '2025-06-08T03:00:00Z': ['held until 2025-06-11T00:00:00Z'],
      '2024-01-01T03:00:00Z': ['held', 'held until 2029-12-31T23:00:00Z'],
    });
  });

  it('keeps the newest verified snapshot, however old, and only that one', () => {
    const c = [
      at('2025-06-10T03:00:00Z'),
      at('2025-06-09T03:00:00Z', { verified: false }),
      at('2025-01-15T03:00:00Z', { verified: true }),
      at('2024-11-15T03:00:00Z', { verified: true }),
    ];
    expect(kept(run(c, { daily: 1 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['daily 2025-06-10'],
      '2025-01-15T03:00:00Z': ['newest verified'],
    });
    // Already kept by the calendar: both reasons are listed.
    expect(kept(run(c, { monthly: 3 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['monthly 2025-06'],
      '2025-01-15T03:00:00Z': ['monthly 2025-01', 'newest verified'],
      '2024-11-15T03:00:00Z': ['monthly 2024-11'],
    });
  });

  it('never leaves fewer than minimum, topping up with the newest not yet kept', () => {
    const c = [
      at('2025-06-10T03:00:00Z'),
      at('2025-06-10T01:00:00Z'),
      at('2025-06-09T03:00:00Z'),
      at('2025-06-08T03:00:00Z'),
      at('2025-06-07T03:00:00Z'),
      at('2024-01-01T03:00:00Z', { held: true }),
    ];
    expect(kept(run(c, { daily: 1, minimum: 4 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['daily 2025-06-10'],
      '2025-06-10T01:00:00Z': ['minimum'],
      '2025-06-09T03:00:00Z': ['minimum'],
      '2024-01-01T03:00:00Z': ['held'],
    });
    // Already enough kept: minimum adds nothing.
    expect(kept(run(c, { daily: 3, minimum: 2 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['daily 2025-06-10'],
      '2025-06-09T03:00:00Z': ['daily 2025-06-09'],
      '2025-06-08T03:00:00Z': ['daily 2025-06-08'],
      '2024-01-01T03:00:00Z': ['held'],
    });
    // A minimum above the count keeps everything.
    expect(run(c, { minimum: 99 }, 'UTC', NOW).every((d) => d.keep)).toBe(true);
  });

  it('an all-zero policy still keeps the newest snapshot', () => {
    const c = [at('2025-06-08T03:00:00Z'), at('2025-06-10T03:00:00Z'), at('2025-06-09T03:00:00Z')];
    expect(run(c, {}, 'UTC', NOW)).toEqual([
      { snapshot: '2025-06-10T03:00:00Z', keep: true, reasons: ['newest'] },
      { snapshot: '2025-06-09T03:00:00Z', keep: false, reasons: [] },
      { snapshot: '2025-06-08T03:00:00Z', keep: false, reasons: [] },
    ]);
    expect(run([], {}, 'UTC', NOW)).toEqual([]);
  });

  it('last N keeps the N newest regardless of calendar', () => {
    const c = [
      at('2025-06-10T03:00:00Z'),
      at('2025-06-10T02:00:00Z'),
      at('2025-06-10T01:00:00Z'),
      at('2025-06-01T03:00:00Z'),
    ];
    expect(kept(run(c, { last: 2 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['last 1'],
      '2025-06-10T02:00:00Z': ['last 2'],
    });
    expect(kept(run(c, { last: 1, daily: 2 }, 'UTC', NOW))).toEqual({
      '2025-06-10T03:00:00Z': ['daily 2025-06-10', 'last 1'],
      '2025-06-01T03:00:00Z': ['daily 2025-06-01'],
    });
  });

  it('keeps snapshots from the future (clock skew) without letting them take a slot', () => {
    const c = [
      at('2025-06-10T12:05:00Z'), // 5 minutes after now
      at('2025-06-10T03:00:00Z'),
      at('2025-06-09T03:00:00Z'),
    ];
    expect(kept(run(c, { daily: 1 }, 'UTC', NOW))).toEqual({
      '2025-06-10T12:05:00Z': ['future'],
      '2025-06-10T03:00:00Z': ['daily 2025-06-10'],
    });
    expect(kept(run(c, {}, 'UTC', NOW))).toEqual({
      '2025-06-10T12:05:00Z': ['future'],
      '2025-06-10T03:00:00Z': ['newest'],
    });
    // A snapshot exactly at now is not in the future.
    expect(kept(run([at(NOW)], {}, 'UTC', NOW))).toEqual({ [NOW]: ['newest'] });
  });
});

describe('selectRetention: invalid input', () => {
  const ok = [at('2025-06-10T03:00:00Z')];
  const opts = { now: '2025-06-10T12:00:00Z', timeZone: 'Europe/Berlin' };

  it('rejects an unknown or non-IANA time zone', () => {
    for (const timeZone of ['Europe/Atlantis', '', 'local', 'system']) {
      expect(() => selectRetention(ok, ZERO, { ...opts, timeZone })).toThrow(/unknown time zone/);
    }
  });

  it('rejects negative, fractional or missing counts', () => {
    expect(() => selectRetention(ok, policy({ daily: -1 }), opts)).toThrow(/policy\.daily must be a non-negative integer, got -1/);
    expect(() => selectRetention(ok, policy({ weekly: 1.5 }), opts)).toThrow(/policy\.weekly/);
    expect(() => selectRetention(ok, policy({ last: Number.NaN }), opts)).toThrow(/policy\.last/);
    const { minimum: _m, ...noMinimum } = ZERO;
    expect(() => selectRetention(ok, noMinimum as RetentionPolicy, opts)).toThrow(/policy\.minimum .*got undefined/);
  });

  it('rejects duplicate or empty snapshot names', () => {
    const dup = [at('2025-06-10T03:00:00Z'), { ...at('2025-06-09T03:00:00Z'), snapshot: '2025-06-10T03:00:00Z' }];
    expect(() => selectRetention(dup, ZERO, opts)).toThrow(/snapshot 2025-06-10T03:00:00Z: duplicate snapshot name/);
    expect(() => selectRetention([{ ...at('2025-06-10T03:00:00Z'), snapshot: '' }], ZERO, opts)).toThrow(/non-empty string/);
  });

  it('rejects unparsable or zone-less instants', () => {
    for (const createdAt of ['yesterday', '2025-13-01T00:00:00Z', '2025-02-29T00:00:00Z', '2025-06-10T03:00:00', '2025-06-10', '']) {
      expect(() => selectRetention([{ snapshot: 'x', createdAt, tier: 'daily' }], ZERO, opts)).toThrow(/snapshot x: createdAt .* is not an ISO instant/);
    }
    expect(() => selectRetention(ok, ZERO, { ...opts, now: 'now' })).toThrow(/now "now" is not an ISO instant/);
    expect(() => selectRetention([at('2025-06-10T03:00:00Z', { heldUntil: 'forever' })], ZERO, opts)).toThrow(/heldUntil "forever"/);
  });

  it('names every problem at once', () => {
    expect(() =>
      selectRetention([{ snapshot: 'x', createdAt: 'bad', tier: 'daily' }], policy({ daily: -1 }), { now: opts.now, timeZone: 'Mars/Base' }),
    ).toThrow(/unknown time zone "Mars\/Base".*policy\.daily.*snapshot x: createdAt "bad"/);
  });
});

describe('describeRetention', () => {
  it('prints one line per decision and a count', () => {
    const c = [at('2025-06-10T03:00:00Z', { snapshot: 'shop-20250610T030000' }), at('2025-06-09T03:00:00Z', { snapshot: 'shop-20250609T030000', verified: true }), at('2025-06-08T03:00:00Z', { snapshot: 'shop-20250608T030000' })];
    const table = describeRetention(run(c, { daily: 1 }, 'UTC', '2025-06-10T12:00:00Z'));
    expect(table).toBe(
      [
        'ACTION  SNAPSHOT              REASONS',
        'keep    shop-20250610T030000  daily 2025-06-10',
        'keep    shop-20250609T030000  newest verified',
        'remove  shop-20250608T030000  -',
        '2 kept, 1 removed',
      ].join('\n'),
    );
    expect(describeRetention([])).toBe('no snapshots');
  });
});
