// Per-table row counts read from a plain-format dump's COPY blocks: the counts belong to the dump itself
// (the same snapshot of the database), so a restore drill can compare a restored database against them.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

const COPY_START = /^COPY (.+?) (?:\(.*\) )?FROM stdin;$/;

/** `{ 'public.items': 250, 'public."Odd Name"': 3 }`, table names exactly as pg_dump wrote them. */
export async function countCopyRows(dump: Readable): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let table: string | undefined;
  for await (const line of createInterface({ input: dump, crlfDelay: Infinity })) {
    if (table === undefined) {
      const m = COPY_START.exec(line);
      if (m?.[1]) {
        table = m[1].trim();
        counts[table] ??= 0;
      }
    } else if (line === '\\.') {
      table = undefined;
    } else {
      counts[table]! += 1; // COPY text format escapes newlines inside values, so one line is one row
    }
  }
  return counts;
}
