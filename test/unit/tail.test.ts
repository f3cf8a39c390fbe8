import { describe, expect, it } from 'vitest';
import { Tail } from '../../src/remote/host';

describe('Tail', () => {
  it('keeps exactly the last max characters, whatever the chunking', () => {
    const text = Array.from({ length: 5000 }, (_, i) => `line ${i}\r`).join('');
    for (const size of [1, 7, 100, 4096, text.length]) {
      const t = new Tail(1000);
      for (let i = 0; i < text.length; i += size) t.push(Buffer.from(text.slice(i, i + size)));
      expect(t.toString(), `chunks of ${size}`).toBe(text.slice(-1000));
    }
  });
  it('holds less than the whole input: at most 64 chunks or twice the limit beside the kept tail', () => {
    const t = new Tail(100);
    for (let i = 0; i < 10_000; i++) t.push('x'.repeat(50));
    expect((t as unknown as { length: number }).length).toBeLessThanOrEqual(200);
    expect(t.toString()).toBe('x'.repeat(100));
  });
  it('short output is kept whole, and reading it twice gives the same', () => {
    const t = new Tail(100);
    t.push('a');
    t.push('b');
    expect(t.toString()).toBe('ab');
    expect(t.toString()).toBe('ab');
  });
});
