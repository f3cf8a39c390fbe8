// How much a file write stream takes before it pushes back on its source. Node's default (16 KiB) is less than one
// HTTP chunk, so every chunk paused the download until the disk write had finished: an S3 download ran 1.4–1.7×
// slower than with 1 MiB (300 MiB from MinIO on loopback: 0.83–1.08 s → 0.60–0.72 s). Dumps no longer come through
// the worker at all (capture-stream.ts).
export const FILE_WRITE_BUFFER = 1024 * 1024;
