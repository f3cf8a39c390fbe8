// An archive's upload (StorageBackend.put) and a snapshot's media objects (uploadMedia) in a process of their own
// (shared/apart.ts): hashing, sending and reading back what landed move every byte through JavaScript buffers,
// which the worker would keep the high-water mark of. The storage is opened there from its config (secrets
// resolved there).
import { join } from 'node:path';
import type { Storage } from '../config/schema';
import { runApart, throttled, type ApartTask } from '../shared/apart';
import { isRegularFile } from '../shared/files';
import { MEDIA_INDEX } from '../snapshot/media-index';
import { openStorage } from './index';
import { uploadMedia, type MediaProgress, type MediaUploadResult } from './media-objects';
import type { PutOptions, PutResult, UploadState } from './types';

export interface PutRequest {
  storage: { name: string; config: Storage };
  key: string;
  file: string;
  sha256: string;
  size: number;
}

type PutEvent = { bytes: number } | { state: UploadState };

export function putApart(request: PutRequest, opts: Pick<PutOptions, 'signal' | 'onProgress' | 'onState'> = {}): Promise<PutResult> {
  return runApart<PutResult>('put', request, {
    ...(opts.signal ? { signal: opts.signal } : {}),
    onEvent: (e) => {
      const event = e as PutEvent;
      if ('state' in event) opts.onState?.(event.state);
      else opts.onProgress?.(event.bytes);
    },
  });
}

/** The child's side. Byte counts go at most four times a second; every state (a part stored) goes. */
export const putTask: ApartTask = async (request, { signal, emit }) => {
  const r = request as PutRequest;
  const backend = await openStorage(r.storage.name, r.storage.config);
  const onProgress = throttled<number>((bytes) => emit({ bytes }), () => 'bytes');
  try {
    return await backend.put(r.key, r.file, { sha256: r.sha256, size: r.size, signal, onProgress, onState: (state) => emit({ state }) });
  } finally {
    onProgress.flush();
  }
};

export interface MediaRequest {
  storage: { name: string; config: Storage };
  plan: string;
  snapshot: string;
  dir: string;
  scratch: string;
  recipients?: string[];
}

/** Nothing (and no process started) for a snapshot without media, as uploadMedia. */
export async function uploadMediaApart(request: MediaRequest, opts: { signal?: AbortSignal; onProgress?: (p: MediaProgress) => void } = {}): Promise<MediaUploadResult | undefined> {
  if (!(await isRegularFile(join(request.dir, MEDIA_INDEX)))) return undefined;
  return runApart<MediaUploadResult | undefined>('media', request, { ...(opts.signal ? { signal: opts.signal } : {}), onEvent: (e) => opts.onProgress?.(e as MediaProgress) });
}

/** The child's side of uploadMediaApart; progress at most four times a second. */
export const mediaTask: ApartTask = async (request, { signal, emit }) => {
  const { storage, ...r } = request as MediaRequest;
  const onProgress = throttled<MediaProgress>(emit, () => 'media');
  try {
    return await uploadMedia(await openStorage(storage.name, storage.config), { ...r, signal, onProgress });
  } finally {
    onProgress.flush();
  }
};
