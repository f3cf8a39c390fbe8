// The CLI's Temporal client. An unreachable server or an unknown namespace is one line naming it, not a stack.
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config/schema';
import { LifeboatError } from '../shared/errors';

export async function connectClient(temporal: Config['temporal']): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: temporal.address, connectTimeout: '10s' });
  } catch (err) {
    throw new LifeboatError('TemporalUnavailable', `cannot reach Temporal at ${temporal.address}: ${firstLine(err)} (is the server running? see temporal.address in lifeboat.yaml)`);
  }
  try {
    await connection.workflowService.describeNamespace({ namespace: temporal.namespace });
  } catch (err) {
    await connection.close();
    const notFound = (err as { code?: number }).code === 5;
    throw new LifeboatError(
      'TemporalUnavailable',
      notFound ? `Temporal at ${temporal.address} has no namespace "${temporal.namespace}" (see temporal.namespace in lifeboat.yaml)` : `Temporal at ${temporal.address}: ${firstLine(err)}`,
    );
  }
  return new Client({ connection, namespace: temporal.namespace });
}

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];
