// Per-table row counts read from a plain-format dump's COPY blocks: the counts belong to the dump itself
// (the same snapshot of the database), so a restore drill can compare a restored database against them.
// Counted on the raw bytes as the dump streams by: a data line is only measured (is it `\.`?), never made a
// string, so a dump of millions of rows costs one memchr pass and no garbage in the worker's heap.
import type { Readable } from 'node:stream';

const COPY_START = /^COPY (.+?) (?:\(.*\) )?FROM stdin;$/;
const NL = 0x0a;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** A COPY header longer than this is not read whole (its table then goes uncounted); DDL lines are kept to it. */
const MAX_HEADER = 1024 * 1024;

/** Feed it the dump's chunks in order, then `finish()`: `{ 'public.items': 250, 'public."Odd Name"': 3 }`. */
export class CopyRowCounter {
  private readonly counts: Record<string, number> = {};
  /** The COPY block being read, if any. */
  private table: string | undefined;
  /** Outside a block: the current line's bytes so far (up to MAX_HEADER). */
  private line: Buffer[] = [];
  private lineBytes = 0;
  /** Inside a block: the current line's length and first two bytes so far. */
  private length = 0;
  private first = -1;
  private second = -1;

  push(chunk: Buffer): void {
    let start = 0;
    while (start <= chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.table === undefined) this.keep(chunk, start, end);
      else this.measure(chunk, start, end);
      if (nl === -1) return;
      this.endLine();
      start = nl + 1;
    }
  }

  /** The counts; a last line without a newline counts as a line. */
  finish(): Record<string, number> {
    if (this.lineBytes > 0 || this.length > 0) this.endLine();
    return this.counts;
  }

  private keep(chunk: Buffer, start: number, end: number): void {
    const room = MAX_HEADER - this.lineBytes;
    if (end <= start || room <= 0) return;
    const part = chunk.subarray(start, Math.min(end, start + room));
    this.line.push(Buffer.from(part)); // a copy: the stream may reuse its chunk
    this.lineBytes += part.length;
  }

  private measure(chunk: Buffer, start: number, end: number): void {
    for (let i = start; i < end && this.length + (i - start) < 2; i++) {
      if (this.length + (i - start) === 0) this.first = chunk[i]!;
      else this.second = chunk[i]!;
    }
    this.length += end - start;
  }

  private endLine(): void {
    if (this.table === undefined) {
      const text = Buffer.concat(this.line, this.lineBytes).toString('utf8');
      this.line = [];
      this.lineBytes = 0;
      const m = COPY_START.exec(text);
      if (m?.[1]) {
        this.table = m[1].trim();
        this.counts[this.table] ??= 0;
      }
      return;
    }
    if (this.length === 2 && this.first === BACKSLASH && this.second === DOT) this.table = undefined;
    else this.counts[this.table]! += 1; // COPY text format escapes newlines inside values, so one line is one row
    this.length = 0;
    this.first = this.second = -1;
  }
}

/** Row counts of a whole dump read from `dump` (a custom-format dump through pg_restore --data-only). */
export async function countCopyRows(dump: Readable): Promise<Record<string, number>> {
  const counter = new CopyRowCounter();
  for await (const chunk of dump) counter.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return counter.finish();
}
