// `GET /metrics` on metrics.listen: the Temporal SDK's Prometheus text (from its internal loopback exporter)
// followed by Lifeboat's own registry, so one scrape target serves both.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { LifeboatError, errorLine } from '../shared/errors';
import { splitHostPort } from '../temporal/connection';

export interface MetricsSources {
  registry: Registry;
  sdkMetricsUrl?: string;
  /** Awaited before the first answer, so a scrape right after start sees the values read from storage. */
  ready: Promise<void>;
}

export async function listenMetrics(listen: string, sources: MetricsSources): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    scrape(sources).then(
      (body) => res.writeHead(200, { 'content-type': sources.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error)?.message ?? err}\n`),
    );
  });
  const [host, port] = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new LifeboatError('ConfigError', `metrics.listen ${listen}: cannot listen: ${err.code ?? err.message}`)));
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** A slow storage must not make the scrape itself time out (Prometheus' default is 10 s). */
const READY_WAIT_MS = 5_000;

async function scrape({ registry, sdkMetricsUrl, ready }: MetricsSources): Promise<string> {
  await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, READY_WAIT_MS).unref())]);
  const [sdk, own] = await Promise.all([sdkMetrics(sdkMetricsUrl), registry.metrics()]);
  return `${sdk}${own}`;
}

/** The SDK's exporter answers on loopback; if it does not, Lifeboat's own metrics are still served. */
async function sdkMetrics(url: string | undefined): Promise<string> {
  if (!url) return '';
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const text = await res.text();
    return text.endsWith('\n') || text === '' ? text : `${text}\n`;
  } catch (err) {
    return `# Temporal SDK metrics unavailable: ${errorLine(err)}\n`;
  }
}
