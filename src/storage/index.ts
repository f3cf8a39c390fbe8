import type { Storage } from '../config/schema';
import { LocalBackend } from './local';
import { openS3 } from './s3';
import type { StorageBackend } from './types';

export type { LocalArchive, PutOptions, PutResult, StorageBackend, UploadState, Verification } from './types';

/** Opens a storage backend; S3 credentials are resolved here, inside the calling activity. */
export async function openStorage(name: string, cfg: Storage): Promise<StorageBackend> {
  return cfg.type === 's3' ? openS3(name, cfg) : new LocalBackend(name, cfg);
}
