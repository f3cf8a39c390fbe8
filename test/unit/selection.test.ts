// When a partial restore may stop reading an archive (snapshot/selection.ts): pure, no files.
import { describe, expect, it } from 'vitest';
import { SelectionCut, selects } from '../../src/snapshot/selection';

const run = (patterns: string[], always: string[], paths: string[]) => {
  const cut = new SelectionCut(patterns, always);
  return paths.findIndex((p) => cut.passes(p));
};

describe('selects', () => {
  it('takes a path and what is below it, or every name starting `x.`', () => {
    expect(selects('files/app/site', 'files/app/site/a')).toBe(true);
    expect(selects('files/app/site', 'files/app/site2')).toBe(false);
    expect(selects('database/orders.*', 'database/orders.globals.sql')).toBe(true);
    expect(selects('database/orders.*', 'database/orders2.sql')).toBe(false);
  });
});

describe('SelectionCut', () => {
  const archive = ['manifest.sha256', 'metadata.yml', 'commands', 'commands/v.txt', 'database', 'database/orders.globals.sql', 'database/orders.sql', 'database/other.sql', 'files', 'files/app', 'files/app/a'];
  const always = ['manifest.sha256', 'metadata.yml'];

  it('stops at the first entry after every selected run', () => {
    expect(run(['database/orders.*'], always, archive)).toBe(archive.indexOf('database/other.sql'));
    expect(run(['commands', 'database/orders.*'], always, archive)).toBe(archive.indexOf('database/other.sql'));
  });

  it('never stops before a needed file went by, or when a selection never matched or ran to the end', () => {
    expect(run(['database/orders.*'], [...always, 'media.json'], archive)).toBe(-1);
    expect(run(['database/none.*'], always, archive)).toBe(-1);
    expect(run(['files/app'], always, archive)).toBe(-1);
  });

  it('reads on when the archive is not in name order (a selected entry after its run ended)', () => {
    const shuffled = ['manifest.sha256', 'metadata.yml', 'database/orders.sql', 'database/other.sql', 'database/orders.globals.sql', 'files/app/a'];
    const cut = new SelectionCut(['database/orders.*'], always);
    expect(shuffled.map((p) => cut.passes(p))).toEqual([false, false, false, true, false, false]);
  });
});
