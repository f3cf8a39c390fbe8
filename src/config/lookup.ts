// Finding a plan's source and artifact by name. Pure (types only), so workflows, activities and the CLI share it.
import type { Artifact, Plan, Source } from './schema';

export function findSource(plan: Pick<Plan, 'sources'>, source: string): Source | undefined {
  return plan.sources.find((s) => s.name === source);
}

export function findArtifact(plan: Pick<Plan, 'sources'>, source: string, artifact: string): { source: Source; artifact: Artifact } | undefined {
  const s = findSource(plan, source);
  const a = s?.artifacts.find((x) => x.name === artifact);
  return s && a ? { source: s, artifact: a } : undefined;
}
