// Per-table row counts read from a plain-format dump's COPY blocks: the counts belong to the dump itself
// (the same snapshot of the database), so a restore drill can compare a restored database against them.
// Counted on the raw bytes: a data line is only measured (is it `\.`?), never made a string, so a dump of millions of
// rows costs one memchr pass and no garbage in the worker's heap.
import type { Readable } from 'node:stream';
import { readChunks } from '../shared/files';

const COPY_START = /^COPY (.+?) (?:\(.*\) )?FROM stdin;$/;
const NL = 0x0a;
/** Outside a block only lines starting with this are read (a dump with INSERTs has millions of other lines). */
const COPY_PREFIX = Buffer.from('COPY ');
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** A COPY header longer than this is not read whole (its table then goes uncounted). */
const MAX_HEADER = 1024 * 1024;

/** Feed it the dump's chunks in order, then `finish()`: `{ 'public.items': 250, 'public."Odd Name"': 3 }`. */
export class CopyRowCounter {
  private readonly counts: Record<string, number> = {};
  /** The COPY block being read, if any. */
  private table: string | undefined;
  /** Outside a block: the current line's bytes so far (up to MAX_HEADER), unless it is known not to be a header. */
  private line: Buffer[] = [];
  private lineBytes = 0;
  private notHeader = false;
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
    if (this.lineBytes > 0 || this.notHeader || this.length > 0) this.endLine();
    return this.counts;
  }

  private keep(chunk: Buffer, start: number, end: number): void {
    if (this.notHeader || end <= start) return;
    // The common case, decided without copying: a whole prefix in this chunk that is not `COPY `.
    if (this.lineBytes === 0 && end - start >= COPY_PREFIX.length && chunk.compare(COPY_PREFIX, 0, COPY_PREFIX.length, start, start + COPY_PREFIX.length) !== 0) {
      this.notHeader = true;
      return;
    }
    const room = MAX_HEADER - this.lineBytes;
    if (room <= 0) return;
    const part = chunk.subarray(start, Math.min(end, start + room));
    this.line.push(Buffer.from(part)); // a copy: the stream may reuse its chunk
    this.lineBytes += part.length;
    if (this.lineBytes >= COPY_PREFIX.length && this.lineBytes - part.length < COPY_PREFIX.length) {
      this.notHeader = !Buffer.concat(this.line, this.lineBytes).subarray(0, COPY_PREFIX.length).equals(COPY_PREFIX);
      if (this.notHeader) this.line = [];
    }
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
      const text = this.notHeader ? '' : Buffer.concat(this.line, this.lineBytes).toString('utf8');
      this.line = [];
      this.lineBytes = 0;
      this.notHeader = false;
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

/** Row counts of a plain dump on disk, read into one reused buffer: no garbage, whatever the dump's size. */
export async function countCopyRowsInFile(path: string, signal?: AbortSignal): Promise<Record<string, number>> {
  const counter = new CopyRowCounter();
  await readChunks(path, (chunk) => counter.push(chunk), signal ? { signal } : {});
  return counter.finish();
}
