// Bounded parallelism for workflow code: `work` per item, at most `limit` at once, results in item order.
import { CancellationScope } from '@temporalio/workflow';

export interface LaneOptions<T> {
  /** Cancel the items still running at the first failure (backup captures); without, they finish. */
  cancelOthers?: boolean;
  /**
   * Lanes beside the `limit` ones that take only the items `takes` accepts (small sources: a handshake's worth of
   * work each, which need not wait for a lane meant to bound bulk transfers). At most `lanes` run at once in all.
   */
  extra?: { lanes: number; takes: (item: T) => boolean };
}

/**
 * After the first failure no further item starts, and every lane still runs to its end (so each item's own cleanup,
 * e.g. restarting stopped services, happens before this returns); then the first failure propagates. With
 * `cancelOthers`, the items still running are cancelled at that failure (backup captures); without, they finish
 * (a restore target half-written is worse than one fully restored). Each lane takes the first item not yet taken
 * that it may take, so without `extra` items start strictly in order.
 */
export async function inLanes<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>, opts: LaneOptions<T> = {}): Promise<R[]> {
  const results: R[] = [];
  const taken = items.map(() => false);
  let failure: { err: unknown } | undefined;
  const scope = opts.cancelOthers ? new CancellationScope() : undefined;
  const claim = (may: (item: T) => boolean): number => {
    const i = taken.findIndex((t, j) => !t && may(items[j]!));
    if (i >= 0) taken[i] = true;
    return i;
  };
  const lane = async (may: (item: T) => boolean) => {
    while (!failure) {
      const i = claim(may);
      if (i < 0) return;
      try {
        results[i] = await work(items[i]!);
      } catch (err) {
        if (!failure) {
          failure = { err };
          scope?.cancel();
        }
      }
    }
  };
  const general = Math.min(limit, items.length);
  const extra = opts.extra ? Math.max(0, Math.min(opts.extra.lanes, items.length) - general) : 0;
  const lanes = () => Promise.all([...Array.from({ length: general }, () => lane(() => true)), ...Array.from({ length: extra }, () => lane(opts.extra!.takes))]);
  await (scope ? scope.run(lanes) : lanes());
  if (failure) throw failure.err;
  return results;
}
