// Restore and verification verbs per artifact kind; a kind without a line here cannot be restored by Lifeboat
// (command output is a record, not state; OpenSearch snapshots are restored with its own _restore API).
import type { Artifact } from '../../config/schema';
import type { RestoreModule } from '../types';
import { filesRestore } from './files';
import { mysqlRestore } from './mysql';
import { postgresRestore } from './postgres';
import { redisRestore } from './redis';
import { sqliteRestore } from './sqlite';

const modules: { [T in Artifact['type']]?: RestoreModule<Extract<Artifact, { type: T }>> } = {
  postgres: postgresRestore,
  mysql: mysqlRestore,
  sqlite: sqliteRestore,
  redis: redisRestore,
  files: filesRestore,
};

export function restoreModule<A extends Artifact>(artifact: A): RestoreModule<A> | undefined {
  return modules[artifact.type] as unknown as RestoreModule<A> | undefined;
}
