// inLanes without cancelOthers is plain promise code: its claiming order and bounds, without a workflow.
import { describe, expect, it } from 'vitest';
import { inLanes } from '../../src/workflows/lanes';

/** Runs `items` through inLanes; each item ends when the test releases it. Records starts and the most at once. */
function harness(items: string[], limit: number, extra?: { lanes: number; takes: (item: string) => boolean }) {
  const started: string[] = [];
  const release = new Map<string, () => void>();
  let running = 0;
  let most = 0;
  const done = inLanes(
    items,
    limit,
    (item) =>
      new Promise<string>((resolve) => {
        started.push(item);
        most = Math.max(most, ++running);
        release.set(item, () => {
          running -= 1;
          resolve(item.toUpperCase());
        });
      }),
    extra ? { extra } : {},
  );
  const finish = async (item: string) => {
    release.get(item)!();
    await new Promise((r) => setImmediate(r));
  };
  return { started, finish, done, most: () => most };
}

const small = (item: string) => item.startsWith('s');

describe('inLanes', () => {
  it('without extra lanes: items start strictly in order, at most `limit` at once, results in item order', async () => {
    const h = harness(['a', 'b', 'c', 'd'], 2);
    expect(h.started).toEqual(['a', 'b']);
    await h.finish('b');
    expect(h.started).toEqual(['a', 'b', 'c']);
    await h.finish('a');
    await h.finish('c');
    await h.finish('d');
    expect(await h.done).toEqual(['A', 'B', 'C', 'D']);
    expect(h.most()).toBe(2);
  });

  it('extra lanes take only the items they accept; the general lanes take the next item of any kind', async () => {
    const h = harness(['b1', 's1', 'b2', 's2', 's3', 'b3'], 1, { lanes: 3, takes: small });
    // The general lane takes b1; the two extra lanes the first two small items.
    expect(h.started).toEqual(['b1', 's1', 's2']);
    await h.finish('s1');
    expect(h.started.at(-1)).toBe('s3'); // an extra lane never takes b2
    await h.finish('s2');
    expect(h.started).toHaveLength(4); // no small item left: the freed extra lane stops
    await h.finish('b1');
    expect(h.started.at(-1)).toBe('b2'); // bulk items one at a time, in order
    await h.finish('s3');
    await h.finish('b2');
    expect(h.started.at(-1)).toBe('b3');
    await h.finish('b3');
    expect(await h.done).toEqual(['B1', 'S1', 'B2', 'S2', 'S3', 'B3']);
    expect(h.most()).toBe(3);
  });

  it('extra lanes no more than the general ones add nothing; a general lane takes small items too', async () => {
    const h = harness(['s1', 's2', 's3'], 2, { lanes: 2, takes: small });
    expect(h.started).toEqual(['s1', 's2']);
    await h.finish('s1');
    await h.finish('s2');
    await h.finish('s3');
    expect(await h.done).toEqual(['S1', 'S2', 'S3']);
    expect(h.most()).toBe(2);
  });

  it('after a failure no lane takes a new item; the failure propagates once all have settled', async () => {
    const started: string[] = [];
    const run = inLanes(['b1', 's1', 's2', 'b2'], 1, async (item) => {
      started.push(item);
      if (item === 's1') throw new Error('s1 failed');
      await new Promise((r) => setTimeout(r, 20));
      return item;
    }, { extra: { lanes: 2, takes: small } });
    await expect(run).rejects.toThrow('s1 failed');
    expect(started).toEqual(['b1', 's1']);
  });
});
