// mapInOrder (src/shared/bounded.ts): restore planning asks several targets at once; what comes back must still be in
// plan order, bounded, and a failure must be the same one whatever finished first, thrown only once all have ended.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapInOrder } from '../../src/shared/bounded';

describe('mapInOrder', () => {
  it('runs at most `limit` at once, and reaches it', async () => {
    let running = 0;
    let most = 0;
    await mapInOrder([1, 2, 3, 4, 5, 6, 7], 3, async () => {
      most = Math.max(most, ++running);
      await sleep(10);
      running--;
    });
    expect(most).toBe(3);
  });

  it('returns results in item order, not in the order they finished', async () => {
    const finished: number[] = [];
    const out = await mapInOrder([40, 5, 20, 1], 4, async (ms) => {
      await sleep(ms);
      finished.push(ms);
      return `waited ${ms}`;
    });
    expect(finished).toEqual([1, 5, 20, 40]);
    expect(out).toEqual(['waited 40', 'waited 5', 'waited 20', 'waited 1']);
  });

  it('throws the first failure in item order, after every call has ended', async () => {
    const ended: string[] = [];
    const err = await mapInOrder(['slow-bad', 'fast-bad', 'slow-good'], 3, async (name) => {
      await sleep(name.startsWith('slow') ? 30 : 1);
      ended.push(name);
      if (name.endsWith('bad')) throw new Error(name);
      return name;
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('slow-bad'); // fast-bad failed first, but comes later in order
    expect(ended.sort()).toEqual(['fast-bad', 'slow-bad', 'slow-good']);
  });
});
