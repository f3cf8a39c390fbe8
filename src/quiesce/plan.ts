// Which artifacts of a source are copied while its services are stopped. Pure: the workflow imports it.
import type { Artifact, Source } from '../config/schema';

/** Unset `quiesce`: files are copied with services stopped; dumps run live first (they need the database up). */
export function copiedQuiesced(a: Pick<Artifact, 'type' | 'quiesce'>): boolean {
  return a.quiesce ?? a.type === 'files';
}

/** Live artifacts first (before the stop), then the quiesced ones; without a controller everything is live. */
export function splitForQuiesce<S extends Pick<Source, 'quiesce' | 'artifacts'>>(source: S): { live: S['artifacts']; quiesced: S['artifacts'] } {
  if (!source.quiesce) return { live: source.artifacts, quiesced: [] };
  return {
    live: source.artifacts.filter((a) => !copiedQuiesced(a)),
    quiesced: source.artifacts.filter((a) => copiedQuiesced(a)),
  };
}
