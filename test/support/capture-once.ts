// One artifact module's capture, called directly (no workflow, no activity), with what the backup activity would
// hand it; for tests of a module's own behaviour over a real host.
import type { Artifact, Source } from '../../src/config/schema';
import type { Host } from '../../src/remote/host';
import type { Captured, SourceModule } from '../../src/sources/types';

export function captureOnce<A extends Artifact>(
  module: SourceModule<A>,
  o: { host: Host; artifact: A; snapshot: string; snapshotDir: string; mirrorDir: string; source?: string },
): Promise<Captured> {
  return module.capture({
    host: o.host,
    source: { name: o.source ?? 'app' } as Source,
    artifact: o.artifact,
    snapshot: o.snapshot,
    snapshotDir: o.snapshotDir,
    mirrorDir: o.mirrorDir,
    denyList: [],
    signal: new AbortController().signal,
    progress: () => undefined,
    quiet: (_phase, _bound, fn) => fn(),
  });
}
