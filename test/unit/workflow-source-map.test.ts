// The workflow bundle's source map, slimmed (scripts/workflow-source-map.mjs): the code is unchanged, Lifeboat's own
// files keep every mapping and their text, the SDK's keep the first mapping of each line and no text.
import { SourceMapConsumer, SourceMapGenerator } from 'source-map';
import { describe, expect, it } from 'vitest';
import { slimSourceMap } from '../../scripts/workflow-source-map.mjs';

const OWN = '/repo/src/workflows/backup.ts';
const SDK = '/repo/node_modules/@temporalio/workflow/lib/workflow.js';

function bundle(): string {
  const code = ['function sdk() { return 1; }', 'function backupPlan() {}', 'sdk(); backupPlan();'].join('\n');
  const map = new SourceMapGenerator({ file: 'workflows.js' });
  map.addMapping({ generated: { line: 1, column: 0 }, original: { line: 10, column: 0 }, source: SDK, name: 'sdk' });
  map.addMapping({ generated: { line: 1, column: 17 }, original: { line: 11, column: 2 }, source: SDK });
  map.addMapping({ generated: { line: 2, column: 0 }, original: { line: 28, column: 2 }, source: OWN, name: 'backupPlan' });
  map.addMapping({ generated: { line: 3, column: 7 }, original: { line: 30, column: 4 }, source: OWN });
  map.setSourceContent(SDK, 'export function sdk() {}');
  map.setSourceContent(OWN, 'export async function backupPlan() {}');
  return `${code}\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(map.toString()).toString('base64')}`;
}

function mapOf(code: string) {
  const at = code.lastIndexOf('base64,');
  return JSON.parse(Buffer.from(code.slice(at + 'base64,'.length), 'base64').toString('utf8'));
}

describe('slimSourceMap', () => {
  it('keeps the code, every own mapping and text, and one mapping per line of the rest', async () => {
    const input = bundle();
    const out = await slimSourceMap(input, (s: string) => s.startsWith('/repo/src/'));
    expect(out.slice(0, out.indexOf('//# sourceMappingURL='))).toBe(input.slice(0, input.indexOf('//# sourceMappingURL=')));
    const map = mapOf(out);
    expect(new Set(map.sources)).toEqual(new Set([OWN, SDK]));
    expect(map.sourcesContent[map.sources.indexOf(OWN)]).toBe('export async function backupPlan() {}');
    expect(map.sourcesContent[map.sources.indexOf(SDK)] ?? null).toBeNull();
    await SourceMapConsumer.with(map, null, (c) => {
      expect(c.originalPositionFor({ line: 2, column: 0 })).toMatchObject({ source: OWN, line: 28, column: 2, name: 'backupPlan' });
      expect(c.originalPositionFor({ line: 3, column: 7 })).toMatchObject({ source: OWN, line: 30, column: 4 });
      // The SDK's line keeps its first mapping only: a frame anywhere on it names the file and that line.
      expect(c.originalPositionFor({ line: 1, column: 0 })).toMatchObject({ source: SDK, line: 10, column: 0 });
      expect(c.originalPositionFor({ line: 1, column: 20 })).toMatchObject({ source: SDK, line: 10, column: 0 });
    });
  });

  it('refuses a bundle without an inline map (the worker would not start with it)', async () => {
    await expect(slimSourceMap('function x() {}\n', () => true)).rejects.toThrow(/no inline source map/);
  });
});
