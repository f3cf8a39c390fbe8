// Stop → copy → restart controllers. inspect() says what runs now; only that is stopped, and exactly that is
// started again, in start order (dependencies first). Its result is kept in workflow history, so a restart
// after a worker crash knows what to start without asking a host whose services are already stopped.
import type { Quiesce } from '../config/schema';
import type { Host } from '../remote/host';
import { LifeboatError } from '../shared/errors';
import { composeBase } from '../sources/compose-exec';

export interface QuiesceController {
  /** Services running now that the copy needs stopped, in start order. */
  inspect(host: Host, signal: AbortSignal): Promise<string[]>;
  /** Stops them, last-started first. */
  stop(host: Host, services: string[], signal: AbortSignal): Promise<void>;
  /** Starts them in order; starting one that already runs is harmless. */
  start(host: Host, services: string[], signal: AbortSignal): Promise<void>;
}

export function quiesceController(q: Quiesce): QuiesceController {
  switch (q.type) {
    case 'compose':
      return composeController(q);
    case 'systemd':
      return systemdController(q);
    case 'commands':
      return commandsController(q);
  }
}

type ComposeQuiesce = Extract<Quiesce, { type: 'compose' }>;

/** Start order: the configured `order` first, then the rest as `ps` listed them. */
export function startOrder(running: string[], order: string[]): string[] {
  const rank = (s: string) => (order.includes(s) ? order.indexOf(s) : order.length);
  return running.map((s, i) => ({ s, i })).sort((x, y) => rank(x.s) - rank(y.s) || x.i - y.i).map((x) => x.s);
}

function composeController(q: ComposeQuiesce): QuiesceController {
  const base = composeBase(q);
  return {
    async inspect(host, signal) {
      const out = await run(host, [...base, 'ps', '--status', 'running', '--services'], signal, 'docker compose ps');
      const running = out.split('\n').map((l) => l.trim()).filter(Boolean);
      return startOrder(q.services ? running.filter((s) => q.services!.includes(s)) : running, q.order);
    },
    async stop(host, services, signal) {
      for (const s of [...services].reverse()) await run(host, [...base, 'stop', s], signal, `docker compose stop ${s}`);
    },
    async start(host, services, signal) {
      for (const s of services) await run(host, [...base, 'start', s], signal, `docker compose start ${s}`);
    },
  };
}

/** `systemctl is-active a b` prints one state per unit, in order. */
export function activeUnits(units: string[], isActiveOutput: string): string[] {
  const states = isActiveOutput.split('\n').map((l) => l.trim());
  return units.filter((_, i) => states[i] === 'active' || states[i] === 'reloading');
}

function systemdController(q: Extract<Quiesce, { type: 'systemd' }>): QuiesceController {
  return {
    async inspect(host, signal) {
      // is-active exits non-zero when any unit is inactive: that is an answer, not an error.
      const res = await host.exec([...q.command, 'is-active', '--', ...q.units], { signal });
      if (res.exitCode === 127) throw new LifeboatError('MissingTool', `${q.command[0]} is not installed on ${host.label}`);
      return activeUnits(q.units, res.stdout);
    },
    async stop(host, units, signal) {
      for (const u of [...units].reverse()) await run(host, [...q.command, 'stop', '--', u], signal, `systemctl stop ${u}`);
    },
    async start(host, units, signal) {
      for (const u of units) await run(host, [...q.command, 'start', '--', u], signal, `systemctl start ${u}`);
    },
  };
}

/** Configured commands; `check` (exit 0 = running) decides whether there is anything to stop. */
function commandsController(q: Extract<Quiesce, { type: 'commands' }>): QuiesceController {
  const SERVICE = 'commands';
  return {
    async inspect(host, signal) {
      if (!q.check) return [SERVICE];
      const res = await host.exec(q.check, { signal });
      if (res.exitCode === 127) throw new LifeboatError('MissingTool', `${q.check[0]} is not installed on ${host.label}`);
      return res.exitCode === 0 ? [SERVICE] : [];
    },
    async stop(host, services, signal) {
      if (services.length) await run(host, q.stop, signal, 'stop command');
    },
    async start(host, services, signal) {
      if (services.length) await run(host, q.start, signal, 'start command');
    },
  };
}

async function run(host: Host, argv: string[], signal: AbortSignal, what: string): Promise<string> {
  const res = await host.exec(argv, { signal });
  const tail = res.stderr.trim().split('\n').slice(-3).join('\n');
  if (res.exitCode === 127) throw new LifeboatError('MissingTool', `${what} on ${host.label}: command not found (exit 127): ${tail}`);
  if (res.exitCode !== 0) throw new LifeboatError('CommandFailed', `${what} on ${host.label} failed (exit ${res.exitCode}): ${tail}`);
  return res.stdout;
}
