import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CopyRowCounter, countCopyRows } from '../../src/sources/pg-rowcounts';

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
  it('byte by byte, and as Buffers fed to the counter directly', () => {
    const c = new CopyRowCounter();
    for (const b of Buffer.from(dump)) c.push(Buffer.from([b]));
    expect(c.finish()).toEqual({ 'public.items': 3, 'public."Odd Table"': 0, 'other.t': 2 });
  });
  it('only a line that is exactly \\. ends a block; a last line without a newline still counts', async () => {
    const text = ['COPY public.t (a) FROM stdin;', '\\.x', '\\', '.', ' \\.', 'last'].join('\n');
    expect(await countCopyRows(Readable.from([text]))).toEqual({ 'public.t': 5 });
  });
  it('rows of a big dump in 64 KiB chunks: counted without turning them into strings', () => {
    const rows = 200_000;
    const body = Buffer.from(`COPY public.big (id, v) FROM stdin;\n${Array.from({ length: rows }, (_, i) => `${i}\tvalue ${i}`).join('\n')}\n\\.\n`);
    const c = new CopyRowCounter();
    for (let i = 0; i < body.length; i += 65536) c.push(body.subarray(i, i + 65536));
    expect(c.finish()).toEqual({ 'public.big': rows });
  });
  it('lines outside a block that are not COPY headers (INSERTs, COPYRIGHT) are skipped, also when split', () => {
    const text = ['INSERT INTO t VALUES (1);', 'COPYRIGHT notice', 'COPY public.a (x) FROM stdin;', '1', '\\.', 'INSERT INTO t VALUES (2);'].join('\n');
    for (const size of [1, 3, 4, 5, 6, 1000]) {
      const c = new CopyRowCounter();
      for (let i = 0; i < text.length; i += size) c.push(Buffer.from(text.slice(i, i + size)));
      expect(c.finish(), `chunks of ${size}`).toEqual({ 'public.a': 1 });
    }
  });
});
