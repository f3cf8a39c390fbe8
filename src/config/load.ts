// lifeboat.yaml → validated, typed Config. Errors name the field and the problem.
import { readFile, stat } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { LifeboatError } from '../shared/errors';
import { Config, type Plan } from './schema';

export const DEFAULT_CONFIG_PATH = process.env.LIFEBOAT_CONFIG ?? '/etc/lifeboat/lifeboat.yaml';

/** A lifeboat.yaml is a few KiB; anything near this is a mistake (or an attack on the parser). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export function parseConfig(text: string, file = 'lifeboat.yaml'): Config {
  refuseOversized(file, Buffer.byteLength(text));
  if (text.includes('\0')) throw new LifeboatError('ConfigError', `${file}: not a YAML text file (it contains NUL bytes)`);
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The first line says what and where ("… at line 2, column 8:"); the rest is a code excerpt.
    throw new LifeboatError('ConfigError', `${file}: YAML syntax error: ${doc.errors[0]!.message.split('\n')[0]!.replace(/:$/, '')}`);
  }
  let value: unknown;
  try {
    // Aliases are legitimate (shared source settings), but a few hundred nested ones are a "billion laughs".
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new LifeboatError('ConfigError', `${file}: ${oneLine((err as Error).message)}`);
  }
  // An empty file goes on as {} so the message lists every required field.
  value ??= {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new LifeboatError('ConfigError', `${file}: (top level): expected a mapping with backupRoot, storages and plans, got ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}`);
  }
  const result = Config.safeParse(value);
  if (!result.success) throw new LifeboatError('ConfigError', formatIssues(file, result.error.issues));
  return result.data;
}

export async function loadConfig(file = DEFAULT_CONFIG_PATH): Promise<Config> {
  let text: string;
  try {
    refuseOversized(file, (await stat(file)).size); // before reading it: a 50 MB file is never loaded
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError('ConfigError', `cannot read config ${file}: ${(err as Error).message}`);
  }
  return parseConfig(text, file);
}

export function getPlan(config: Config, planName: string): Plan {
  const plan = Object.hasOwn(config.plans, planName) ? config.plans[planName] : undefined;
  if (!plan) {
    throw new LifeboatError('ConfigError', `unknown plan "${planName}" (defined: ${Object.keys(config.plans).join(', ') || 'none'})`);
  }
  return plan;
}

/** One line per problem, each naming the field path. */
export function formatIssues(file: string, issues: z.core.$ZodIssue[]): string {
  const lines = issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${oneLine(i.message)}`);
  return `${file} is invalid:\n${lines.join('\n')}`;
}

function refuseOversized(file: string, bytes: number): void {
  if (bytes > MAX_CONFIG_BYTES) throw new LifeboatError('ConfigError', `${file}: ${bytes} bytes is larger than a config can be (${MAX_CONFIG_BYTES} bytes)`);
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();
