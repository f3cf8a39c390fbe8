import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../../src/sources/pg-identifiers';

describe('parseQualifiedName', () => {
  it('reads names as pg_dump writes them: bare lower-case parts, or double-quoted ones with "" escapes', () => {
    expect(parseQualifiedName('public.items')).toEqual({ schema: 'public', table: 'items' });
    expect(parseQualifiedName('_s1.t_2')).toEqual({ schema: '_s1', table: 't_2' });
    expect(parseQualifiedName('public."Odd Table"')).toEqual({ schema: 'public', table: 'Odd Table' });
    expect(parseQualifiedName('"a"."b""c"')).toEqual({ schema: 'a', table: 'b"c' });
    expect(parseQualifiedName('"My Schema"."x; DROP TABLE y"')).toEqual({ schema: 'My Schema', table: 'x; DROP TABLE y' });
    expect(parseQualifiedName('public."café ☕"')).toEqual({ schema: 'public', table: 'café ☕' });
    expect(parseQualifiedName('public."a.b"')).toEqual({ schema: 'public', table: 'a.b' });
    expect(parseQualifiedName('public."""')).toBeUndefined();
    expect(parseQualifiedName('public.""""')).toEqual({ schema: 'public', table: '"' });
  });

  it.each([
    ['no schema', 'items'],
    ['three parts', 'db.public.items'],
    ['empty', ''],
    ['empty quoted part', 'public.""'],
    ['statement after the name', 'public.items; DROP TABLE public.keep'],
    ['x; DROP TABLE y', 'x; DROP TABLE y'],
    ['a space', 'public.odd table'],
    ['upper case bare', 'public.Items'],
    ['unicode bare', 'public.café'],
    ['leading digit', 'public.1abc'],
    ['dollar bare', 'public.a$b'],
    ['unbalanced quote', 'public."abc'],
    ['quote escaping out', 'public."a"; DROP TABLE y; --"'],
    ['lone quote inside', 'public."a"b"'],
    ['trailing space', 'public.items '],
    ['comment', 'public.items--'],
    ['NUL', 'public."a\0b"'],
    ['newline after', 'public.items\n'],
  ])('rejects %s', (_what, text) => {
    expect(parseQualifiedName(text)).toBeUndefined();
  });
});

describe('quoteIdent / quoteQualified', () => {
  it('always double-quotes, doubling embedded quotes', () => {
    expect(quoteIdent('items')).toBe('"items"');
    expect(quoteIdent('b"c')).toBe('"b""c"');
    expect(quoteQualified({ schema: 'public', table: 'x; DROP TABLE y' })).toBe('"public"."x; DROP TABLE y"');
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
  });

  it('round-trips any name without NUL through quoting and parsing', () => {
    for (let i = 0; i < 500; i++) {
      const name = { schema: randomName(), table: randomName() };
      expect(parseQualifiedName(quoteQualified(name))).toEqual(name);
    }
  });
});

/** 1–12 characters from a mix of quotes, dots, separators, SQL punctuation and non-ASCII. */
function randomName(): string {
  const alphabet = ['"', '.', ';', ' ', '\\', "'", '-', '\n', 'a', 'Z', '_', '0', 'é', '☕', '𝄞', '$', ':'];
  const bytes = randomBytes(12);
  return Array.from(bytes.subarray(0, 1 + (bytes[0]! % 12)), (b) => alphabet[b % alphabet.length]).join('');
}
