// The CLI's Temporal client. An unreachable server, a TLS problem or an unknown namespace is one line naming it,
// not a stack. How to connect (address, TLS, API key) is src/temporal/connection.ts's business.
import { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { LifeboatError, errorLine } from '../shared/errors';
import { openClientConnection } from '../temporal/connection';

export async function connectClient(temporal: Config['temporal']): Promise<Client> {
  const connection = await openClientConnection(temporal);
  try {
    await connection.workflowService.describeNamespace({ namespace: temporal.namespace });
  } catch (err) {
    await connection.close();
    throw namespaceProblem(temporal, err);
  }
  return new Client({ connection, namespace: temporal.namespace });
}

function namespaceProblem(temporal: Config['temporal'], err: unknown): LifeboatError {
  const code = (err as { code?: number }).code;
  if (code === 5) return new LifeboatError('TemporalUnavailable', `Temporal at ${temporal.address} has no namespace "${temporal.namespace}" (see temporal.namespace in lifeboat.yaml)`);
  // 16 UNAUTHENTICATED / 7 PERMISSION_DENIED: the API key or client certificate is not accepted for this namespace.
  if (code === 16 || code === 7) return new LifeboatError('TemporalUnavailable', `Temporal at ${temporal.address} refused access to namespace "${temporal.namespace}": ${errorLine(err)} (check temporal.apiKey / temporal.tls.cert)`);
  return new LifeboatError('TemporalUnavailable', `Temporal at ${temporal.address}: ${errorLine(err)}`);
}

