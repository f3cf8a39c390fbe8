// Files that must never land in a snapshot, however the sources are
// configured: rsync excludes keep them from being copied, and isDenied
// applies the same rules to a path so other code can double-check.

/**
 * Built-in deny patterns, relative to any directory being backed up.
 * The SOPS age private key decrypts every SOPS-encrypted secret; a copy in
 * backup storage would let anyone who can read a backup decrypt them all.
 */
export const BUILTIN_DENY: readonly string[] = ['.config/sops/age/keys.txt'];

/**
 * rsync `--exclude=` args for the patterns.
 *
 * A pattern with an interior slash (like the SOPS key path) is emitted twice:
 * anchored with a leading `/` (top of the transfer) and prefixed with `**` and
 * a slash (any depth below it), so it holds whether the transfer root is the
 * home directory or something above it. Patterns without an interior slash
 * (`*.cache*`, `cache/`) already match at any depth in rsync and are passed
 * as given, as are patterns that are already anchored or start with `**`.
 *
 * rsync reads `--exclude` values with "old-style" prefixes: `+ x` becomes an
 * INCLUDE and a lone `!` CLEARS every exclude before it (including the
 * built-in ones). Such patterns get an explicit `- ` prefix so they stay
 * literal excludes.
 */
export function rsyncExcludeArgs(patterns: readonly string[]): string[] {
  return patterns.filter((p) => p !== '').flatMap((p) => rsyncForms(p).map((f) => `--exclude=${protect(f)}`));
}

function rsyncForms(pattern: string): string[] {
  const interiorSlash = pattern.replace(/\/+$/, '').includes('/');
  if (!interiorSlash || pattern.startsWith('/') || pattern.startsWith('**')) return [pattern];
  return [`/${pattern}`, `**/${pattern}`];
}

function protect(pattern: string): string {
  return /^[-+] /.test(pattern) || pattern === '!' ? `- ${pattern}` : pattern;
}

/**
 * True when `relPath` (relative to the transfer root, `/`-separated) is
 * excluded by one of the patterns, using rsync's matching rules: the pattern
 * must end on a path-segment boundary (`x.config/…` does not match
 * `.config/…`), a leading `/` anchors it at the root, and anything inside an
 * excluded directory is excluded too. A pattern with a trailing `/` only
 * matches directories; pass a directory's relPath with a trailing `/` so it
 * can tell.
 */
export function isDenied(relPath: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => p !== '' && patternRegExp(p).test(relPath));
}

function patternRegExp(pattern: string): RegExp {
  const anchored = pattern.startsWith('/');
  const dirOnly = pattern.endsWith('/');
  const body = globToRegExp(pattern.replace(/^\/+/, '').replace(/\/+$/, ''));
  const start = anchored ? '^' : '(?:^|/)';
  // Dir-only: something (possibly just the trailing slash) must follow.
  const end = dirOnly ? '/.*$' : '(?:/.*)?$';
  return new RegExp(start + body + end, 's');
}

/** rsync wildmatch subset: `**` crosses `/`, `*` and `?` do not, `[…]` classes. */
function globToRegExp(glob: string): string {
  // Like rsync, a pattern without wildcards is literal, backslashes included.
  if (!/[*?[]/.test(glob)) return escapeRe(glob);
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? '';
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const cls = charClass(glob, i);
      out += cls ? cls.re : '\\[';
      if (cls) i = cls.end;
    } else if (c === '\\' && i + 1 < glob.length) out += escapeRe(glob[++i] ?? '');
    else out += escapeRe(c);
  }
  return out;
}

/** `[…]` starting at `start`, or null when unterminated (then `[` is literal). */
function charClass(glob: string, start: number): { re: string; end: number } | null {
  let i = start + 1;
  const negate = glob[i] === '!' || glob[i] === '^';
  if (negate) i++;
  const close = glob.indexOf(']', i + 1); // a `]` right after `[` is literal
  if (close < 0) return null;
  const members = glob.slice(i, close).replace(/[\\\]^[]/g, '\\$&');
  return { re: `[${negate ? '^/' : ''}${members}]`, end: close };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
