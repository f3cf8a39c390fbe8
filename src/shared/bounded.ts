// Many transfers or checks at once (multipart parts, media objects, restore planning), none left running behind a
// failure; and the progress of a file another process writes (archives, age's output).
import { stat } from 'node:fs/promises';
import pLimit from 'p-limit';

/**
 * Runs `work` for each item, at most `limit` at once. The first failure aborts the others (through their signal)
 * and is thrown once every one has settled, so a caller's cleanup never races a transfer still writing.
 */
export async function allOrNothing<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, work: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const run = pLimit(limit);
  let failure: { err: unknown } | undefined;
  await Promise.allSettled(
    items.map((item) =>
      run(async () => {
        if (both.aborted) return;
        try {
          await work(item, both);
        } catch (err) {
          failure ??= { err };
          stop.abort(err);
        }
      }),
    ),
  );
  if (failure) throw failure.err;
  signal?.throwIfAborted();
}

/**
 * `work` for each item, at most `limit` at once, results in item order. Every call settles before the first failure
 * in item order is thrown (the same one whatever finished first), so nothing still runs behind the caller's cleanup.
 */
export async function mapInOrder<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(limit);
  const settled = await Promise.allSettled(items.map((item) => run(() => work(item))));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

/** Reports the size of a file another process writes, every `everyMs`, until the returned stop is called. */
export function watchGrowth(path: string, onBytes: (bytes: number) => void, everyMs = 1000): () => void {
  const timer = setInterval(() => void stat(path).then((st) => onBytes(st.size), () => undefined), everyMs);
  return () => clearInterval(timer);
}
