// throttled (shared/apart.ts): what a task in its own process sends the worker as progress.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { throttled } from '../../src/shared/apart';

afterEach(() => vi.useRealTimers());

describe('throttled', () => {
  it('sends one event per interval and every change of key; flush sends the last one held back', () => {
    vi.useFakeTimers();
    const sent: Array<[string, number]> = [];
    const report = throttled<[string, number]>((e) => sent.push(e), (e) => e[0], 250);
    report(['download', 1]);
    report(['download', 2]); // held back
    report(['check', 3]); // a new phase goes at once
    vi.advanceTimersByTime(300);
    report(['check', 4]);
    report(['check', 5]); // held back
    report.flush();
    report.flush(); // nothing more held
    expect(sent).toEqual([['download', 1], ['check', 3], ['check', 4], ['check', 5]]);
  });
});
