// One line per artifact kind: adding one is a module plus a line here (and its schema in config/schema.ts).
import type { Artifact } from '../config/schema';
import { command } from './command';
import { files } from './files';
import { mysql } from './mysql';
import { opensearch } from './opensearch';
import { postgres } from './postgres';
import { redis } from './redis';
import { sqlite } from './sqlite';
import type { SourceModule } from './types';

const modules: { [T in Artifact['type']]: SourceModule<Extract<Artifact, { type: T }>> } = {
  postgres,
  mysql,
  sqlite,
  redis,
  opensearch,
  command,
  files,
};

export function sourceModule<A extends Artifact>(artifact: A): SourceModule<A> {
  return modules[artifact.type] as unknown as SourceModule<A>;
}
