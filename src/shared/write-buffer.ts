// How much a file write stream takes before it pushes back on its source. Node's default (16 KiB) is less than one
// SSH packet or HTTP chunk, so every chunk paused the source until the disk write had finished: a dump through the
// SSH library and an S3 download both ran 1.4–1.7× slower than with 1 MiB (scratch measurements, 300 MiB on
// loopback: ssh2 1.34–1.57 s → 0.78–0.92 s, OpenSSH 0.88–0.96 s; S3 get from MinIO 0.83–1.08 s → 0.60–0.72 s).
export const FILE_WRITE_BUFFER = 1024 * 1024;
