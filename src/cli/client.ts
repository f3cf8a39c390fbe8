import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config/schema';

export async function connectClient(temporal: Config['temporal']): Promise<Client> {
  const connection = await Connection.connect({ address: temporal.address, connectTimeout: '10s' });
  return new Client({ connection, namespace: temporal.namespace });
}
