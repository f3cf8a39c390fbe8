// A pass-through stream that counts bytes (and optionally hashes them) on their way through a pipeline,
// so sizes and checksums come from the same single pass that moves the data.
import { createHash, type Hash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface Meter extends Transform {
  bytes: number;
  /** Hex SHA-256 of everything that passed; only for meters created with `sha256: true`. */
  digest(): string;
}

export function meter(opts: { sha256?: boolean; onBytes?: (bytes: number) => void } = {}): Meter {
  const hash: Hash | undefined = opts.sha256 ? createHash('sha256') : undefined;
  const m = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash?.update(chunk);
      m.bytes += chunk.length;
      opts.onBytes?.(m.bytes);
      done(null, chunk);
    },
  }) as Meter;
  m.bytes = 0;
  m.digest = () => {
    if (!hash) throw new Error('meter created without sha256');
    return hash.digest('hex');
  };
  return m;
}
