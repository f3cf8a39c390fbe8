// The tasks `lifeboat internal-apart <task>` runs for the worker (shared/apart.ts), each loaded only when asked for.
import type { ApartTask } from '../shared/apart';

export const APART_TASKS: Record<string, () => Promise<ApartTask>> = {
  finalize: async () => (await import('../snapshot/finalize-apart')).finalizeTask,
  fetch: async () => (await import('../restore/fetch-apart')).fetchTask,
  put: async () => (await import('../storage/upload-apart')).putTask,
};
