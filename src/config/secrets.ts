// Resolves secret references. Called only inside activities, on the worker, right before use.
import { readFile } from 'node:fs/promises';
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
