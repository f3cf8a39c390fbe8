// The one shape of SHA-256 digests and restic ids (both 64 lowercase hex digits) that untrusted input is held to.
export function isHex64(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}
