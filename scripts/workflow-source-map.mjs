// The workflow bundle's inline source map, slimmed. The worker parses that map into a SourceMapConsumer when it
// starts and keeps it for good (it maps workflow stack traces: failures, the Web UI's stack trace query). Three
// quarters of its mappings are the SDK's and its dependencies': an idle worker held 6–8 MiB more RSS with them
// than with Lifeboat's own alone (measured alternately, 3 × 3 starts). Lifeboat's own files keep every mapping and
// their text; other files keep the first mapping of each generated line and no text, so their stack frames still
// name file and line (without them the SDK prints `null:null:null`).
import { SourceMapConsumer, SourceMapGenerator } from 'source-map';

const MARK = '//# sourceMappingURL=data:';
const INLINE = `${MARK}application/json;base64,`;

/** `code` with its inline map slimmed: every mapping and the text of the sources `own` accepts, lines of the rest. */
export async function slimSourceMap(code, own) {
  const at = code.lastIndexOf(MARK); // whatever media type and charset follow
  const base64 = at < 0 ? -1 : code.indexOf('base64,', at);
  if (base64 < 0) throw new Error('the workflow bundle has no inline source map (the worker needs one)');
  const raw = JSON.parse(Buffer.from(code.slice(base64 + 'base64,'.length).trim(), 'base64').toString('utf8'));
  const consumer = await new SourceMapConsumer(raw);
  try {
    const out = new SourceMapGenerator({ file: raw.file });
    let line = 0; // the generated line whose first mapping of another source's was kept
    consumer.eachMapping((m) => {
      if (!m.source) return;
      if (!own(m.source)) {
        if (m.generatedLine === line) return;
        line = m.generatedLine;
      }
      out.addMapping({ generated: { line: m.generatedLine, column: m.generatedColumn }, original: { line: m.originalLine, column: m.originalColumn }, source: m.source, ...(m.name ? { name: m.name } : {}) });
    });
    for (const source of consumer.sources) if (own(source)) out.setSourceContent(source, consumer.sourceContentFor(source, true));
    return `${code.slice(0, at)}${INLINE}${Buffer.from(out.toString()).toString('base64')}\n`;
  } finally {
    consumer.destroy();
  }
}
