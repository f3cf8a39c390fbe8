// An archive's upload (StorageBackend.put) and a snapshot's media objects (uploadMedia) in a process of their own
// (shared/apart.ts): hashing, sending and reading back what landed move every byte through JavaScript buffers,
// which the worker would keep the high-water mark of. The storage is opened there from its config (secrets
// resolved there).
import { runApart, throttled, type ApartTask } from '../shared/apart';
import { openStorage } from './index';
import { uploadMedia, type MediaProgress, type MediaUploadResult } from './media-objects';
import type { PutOptions, PutResult, StorageRef, UploadState } from './types';

export interface PutRequest {
  storage: StorageRef;
  key: string;
  file: string;
  sha256: string;
  size: number;
  /** A snapshot's media objects, sent before the archive (which leaves them out); nothing without a media.json. */
  media?: MediaRequest;
}

/** Where the snapshot's media files are; media objects are named after their hashes (media-objects.ts). */
export interface MediaRequest {
  plan: string;
  snapshot: string;
  dir: string;
  scratch: string;
  recipients?: string[];
}

type PutEvent = { bytes: number } | { state: UploadState } | { media: MediaProgress } | { archive: true };

export interface PutApartOptions extends Pick<PutOptions, 'signal' | 'onProgress' | 'onState'> {
  onMedia?: (p: MediaProgress) => void;
  /** The media objects are stored; the archive's upload begins. */
  onArchive?: () => void;
}

/** Media objects (if any), then the archive, in one process: one start per storage and run. */
export function putApart(request: PutRequest, opts: PutApartOptions = {}): Promise<PutResult & { media?: MediaUploadResult }> {
  return runApart('put', request, {
    ...(opts.signal ? { signal: opts.signal } : {}),
    onEvent: (e) => {
      const event = e as PutEvent;
      if ('state' in event) opts.onState?.(event.state);
      else if ('media' in event) opts.onMedia?.(event.media);
      else if ('archive' in event) opts.onArchive?.();
      else opts.onProgress?.(event.bytes);
    },
  });
}

/** The child's side. Byte counts go at most four times a second; every state (a part stored) goes. */
export const putTask: ApartTask = async (request, { signal, emit }) => {
  const r = request as PutRequest;
  const backend = await openStorage(r.storage.name, r.storage.config);
  const onMedia = throttled<MediaProgress>((media) => emit({ media }), () => 'media');
  const onProgress = throttled<number>((bytes) => emit({ bytes }), () => 'bytes');
  try {
    const media = r.media ? await uploadMedia(backend, { ...r.media, signal, onProgress: onMedia }) : undefined;
    onMedia.flush();
    emit({ archive: true });
    const put = await backend.put(r.key, r.file, { sha256: r.sha256, size: r.size, signal, onProgress, onState: (state) => emit({ state }) });
    return { ...put, ...(media ? { media } : {}) };
  } finally {
    onMedia.flush();
    onProgress.flush();
  }
};
