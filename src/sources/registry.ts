// One line per artifact kind.
import type { Artifact } from '../config/schema';
import { files } from './files';
import { postgres } from './postgres';
import type { SourceModule } from './types';

const modules: { [T in Artifact['type']]: SourceModule<Extract<Artifact, { type: T }>> } = {
  postgres,
  files,
};

export function sourceModule<A extends Artifact>(artifact: A): SourceModule<A> {
  return modules[artifact.type] as unknown as SourceModule<A>;
}
