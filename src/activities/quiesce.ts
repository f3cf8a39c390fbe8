// Quiesce activities: inspect (what runs now, recorded in history), stop, start. Kept separate so a retried
// or resumed restart starts exactly what inspect saw, even when the worker died with services stopped.
import type { Source } from '../config/schema';
import { connectHost } from '../remote/host';
import { quiesceController } from '../quiesce/controller';
import { LifeboatError } from '../shared/errors';
import type { PlanContext, QuiesceRecord } from '../shared/types';
import { runActivity } from './run';

export function createQuiesceActivities() {
  return {
    async quiesceInspect(ctx: PlanContext, sourceName: string): Promise<QuiesceRecord> {
      return withController(ctx, sourceName, async (source, host, signal) => ({
        source: source.name,
        controller: source.quiesce!.type,
        services: await quiesceController(source.quiesce!).inspect(host, signal),
      }));
    },

    async quiesceStop(ctx: PlanContext, sourceName: string, services: string[]): Promise<string> {
      return withController(ctx, sourceName, async (source, host, signal) => {
        await quiesceController(source.quiesce!).stop(host, services, signal);
        return new Date().toISOString();
      });
    },

    async quiesceStart(ctx: PlanContext, sourceName: string, services: string[]): Promise<string> {
      return withController(ctx, sourceName, async (source, host, signal) => {
        await quiesceController(source.quiesce!).start(host, services, signal);
        return new Date().toISOString();
      });
    },
  };
}

export type QuiesceActivities = ReturnType<typeof createQuiesceActivities>;

async function withController<T>(
  ctx: PlanContext,
  sourceName: string,
  fn: (source: Source, host: Awaited<ReturnType<typeof connectHost>>, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return runActivity(async ({ signal, progress }) => {
    const source = ctx.plan.sources.find((s) => s.name === sourceName);
    if (!source?.quiesce) throw new LifeboatError('ConfigError', `source ${sourceName} of plan ${ctx.planName} has no quiesce controller`);
    progress({ source: sourceName, controller: source.quiesce.type });
    const host = await connectHost(source, ctx, signal);
    try {
      return await fn(source, host, signal);
    } finally {
      host.close();
    }
  });
}
