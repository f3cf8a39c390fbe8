// Table names read back from metadata.yml (the row counts' keys) are untrusted: they are parsed the way pg_dump
// writes them and re-quoted here, so nothing from a snapshot is ever spliced into SQL as it stands.

/** A schema-qualified table name, both parts as PostgreSQL stores them (unquoted, case kept). */
export interface QualifiedName {
  schema: string;
  table: string;
}

// pg_dump's fmtId leaves a name bare only when it is lower-case letters, digits and "_" not starting with a digit;
// anything else is double-quoted with embedded quotes doubled. A quoted name is never empty and holds no NUL.
const PART = String.raw`[a-z_][a-z0-9_]*|"(?:[^"\0]|"")+"`;
const QUALIFIED = new RegExp(`^(${PART})\\.(${PART})$`, 'u');

function unquote(part: string): string {
  return part.startsWith('"') ? part.slice(1, -1).replace(/""/g, '"') : part;
}

/** `schema.table` exactly as pg_dump writes it in a COPY line; undefined for anything else. */
export function parseQualifiedName(text: string): QualifiedName | undefined {
  const m = QUALIFIED.exec(text);
  if (!m) return undefined;
  return { schema: unquote(m[1]!), table: unquote(m[2]!) };
}

/** An identifier in double quotes, embedded quotes doubled: safe for any name without NUL. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('a PostgreSQL identifier cannot contain NUL');
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteQualified(name: QualifiedName): string {
  return `${quoteIdent(name.schema)}.${quoteIdent(name.table)}`;
}
