import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { countCopyRows } from '../../src/sources/pg-rowcounts';

const dump = [
  '--',
  '-- PostgreSQL database dump',
  'COPY public.items (id, label) FROM stdin;',
  '1\tfirst',
  '2\tline one\\nline two',
  '3\t\\N',
  '\\.',
  '',
  'COPY public."Odd Table" ("Col") FROM stdin;',
  '\\.',
  'COPY other.t  FROM stdin;',
  '',
  '',
  '\\.',
  "INSERT INTO x VALUES ('COPY fake (a) FROM stdin;');",
  '-- PostgreSQL database dump complete',
].join('\n');

describe('countCopyRows', () => {
  it('counts one row per data line, empty tables as 0, names as pg_dump wrote them', async () => {
    expect(await countCopyRows(Readable.from([dump]))).toEqual({ 'public.items': 3, 'public."Odd Table"': 0, 'other.t': 2 });
  });
  it('works across arbitrary chunk boundaries', async () => {
    const chunks = dump.match(/[\s\S]{1,7}/g)!;
    expect(await countCopyRows(Readable.from(chunks))).toEqual({ 'public.items': 3, 'public."Odd Table"': 0, 'other.t': 2 });
  });
});
