// Bounded parallelism for workflow code: `work` per item, at most `limit` at once, results in item order.
import { CancellationScope } from '@temporalio/workflow';

/**
 * After the first failure no further item starts, and every lane still runs to its end (so each item's own cleanup,
 * e.g. restarting stopped services, happens before this returns); then the first failure propagates. With
 * `cancelOthers`, the items still running are cancelled at that failure (backup captures); without, they finish
 * (a restore target half-written is worse than one fully restored).
 */
export async function inLanes<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>, opts: { cancelOthers?: boolean } = {}): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failure: { err: unknown } | undefined;
  const scope = opts.cancelOthers ? new CancellationScope() : undefined;
  const lane = async () => {
    while (next < items.length && !failure) {
      const i = next++;
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
  const lanes = () => Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  await (scope ? scope.run(lanes) : lanes());
  if (failure) throw failure.err;
  return results;
}
