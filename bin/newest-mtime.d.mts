/** Newest mtime (ms) under dir, directories included; 0 if absent. */
export function newestMtime(dir: string): number;
