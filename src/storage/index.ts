import type { Storage } from '../config/schema';
import { LocalBackend } from './local';
import { openRestic } from './restic';
import type { StorageBackend } from './types';

export type { LocalArchive, PutOptions, PutResult, StorageBackend, UploadState, Verification } from './types';
export { isRestic, type ResticBackend } from './restic';

/**
 * Opens a storage backend; S3 credentials and restic's password are resolved here, inside the calling activity.
 * The AWS SDK is loaded only when an S3 storage is opened (an idle worker without one: 5–7 MiB less).
 */
export async function openStorage(name: string, cfg: Storage): Promise<StorageBackend> {
  if (cfg.type === 's3') return (await import('./s3')).openS3(name, cfg);
  if (cfg.type === 'restic') return openRestic(name, cfg);
  return new LocalBackend(name, cfg);
}
