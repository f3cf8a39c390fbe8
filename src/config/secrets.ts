// Resolves secret references. Called only inside activities, on the worker, right before use.
import { readFile, stat } from 'node:fs/promises';
import { LifeboatError } from '../shared/errors';
import type { SecretRef } from './schema';

export async function resolveSecret(ref: SecretRef, what: string): Promise<string> {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') {
      throw new LifeboatError('SecretUnavailable', `${what}: environment variable ${ref.env} is not set on the worker`);
    }
    return value;
  }
  try {
    // A trailing newline is an editor artefact, never part of the secret.
    return (await readFile(ref.file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new LifeboatError('SecretUnavailable', `${what}: cannot read secret file ${ref.file}: ${(err as Error).message}`);
  }
}

/**
 * `config validate --check-secrets`: every secret reference in the config resolves here and now (the env var is
 * set, the file exists and is readable by its owner only). Returns one line per problem, naming the field path.
 */
export async function checkSecrets(config: unknown): Promise<string[]> {
  const problems: string[] = [];
  for (const { path, ref } of secretRefs(config)) {
    if ('env' in ref) {
      if (!process.env[ref.env]) problems.push(`${path}: environment variable ${ref.env} is not set`);
      continue;
    }
    try {
      const st = await stat(ref.file);
      if (!st.isFile()) problems.push(`${path}: ${ref.file} is not a file`);
      else if (st.mode & 0o077) problems.push(`${path}: ${ref.file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
      else await readFile(ref.file);
    } catch (err) {
      problems.push(`${path}: cannot read ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return problems;
}

function* secretRefs(value: unknown, path: string[] = []): Generator<{ path: string; ref: SecretRef }> {
  if (!value || typeof value !== 'object') return;
  const keys = Object.keys(value);
  const o = value as Record<string, unknown>;
  if (keys.length === 1 && (typeof o.env === 'string' || typeof o.file === 'string')) {
    yield { path: path.join('.'), ref: o as SecretRef };
    return;
  }
  for (const k of keys) yield* secretRefs(o[k], [...path, k]);
}
