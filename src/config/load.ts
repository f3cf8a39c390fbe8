// lifeboat.yaml → validated, typed Config. Errors name the field and the problem.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { LifeboatError } from '../shared/errors';
import { Config, type Plan } from './schema';

export const DEFAULT_CONFIG_PATH = process.env.LIFEBOAT_CONFIG ?? '/etc/lifeboat/lifeboat.yaml';

export function parseConfig(text: string, file = 'lifeboat.yaml'): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new LifeboatError('ConfigError', `${file}: YAML syntax error: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  const result = Config.safeParse(doc.toJS() ?? {});
  if (!result.success) throw new LifeboatError('ConfigError', formatIssues(file, result.error.issues));
  return result.data;
}

export async function loadConfig(file = DEFAULT_CONFIG_PATH): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
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

export function formatIssues(file: string, issues: z.core.$ZodIssue[]): string {
  const lines = issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  return `${file} is invalid:\n${lines.join('\n')}`;
}
