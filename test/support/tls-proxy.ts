// A TLS-terminating proxy in front of the test's plain Temporal dev server: TLS (HTTP/2 over ALPN, client
// certificates required and checked against the CA) outside, the dev server's plain gRPC port inside. A real
// handshake for every client, as a production Temporal behind TLS would do it.
import { readFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

export interface TlsProxy {
  address: string;
  /** Client certificates the proxy accepted (subject CNs), and handshakes it refused (error codes). */
  accepted: string[];
  refused: string[];
  close(): Promise<void>;
}

export async function startTlsProxy(opts: { target: string; cert: string; key: string; ca: string }): Promise<TlsProxy> {
  const [cert, key, ca] = await Promise.all([readFile(opts.cert), readFile(opts.key), readFile(opts.ca)]);
  const [host, port] = [opts.target.slice(0, opts.target.lastIndexOf(':')), Number(opts.target.slice(opts.target.lastIndexOf(':') + 1))];
  const accepted: string[] = [];
  const refused: string[] = [];
  const sockets = new Set<{ destroy(): void }>();
  const server = createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, (client: TLSSocket) => {
    accepted.push(String(client.getPeerCertificate().subject?.CN ?? '?'));
    const upstream = connectTcp({ host, port });
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => refused.push(err.code ?? err.message));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    address: `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    accepted,
    refused,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
