// Commands run inside a docker compose service: `docker compose [-f file]… exec -T <service> <argv…>`.
// -T: no TTY, so binary dumps pass through stdout unchanged.
import type { ComposeTarget } from '../config/schema';

export function composeBase(c: { command: string[]; projectDir: string; files: string[] }): string[] {
  return [...c.command, '--project-directory', c.projectDir, ...c.files.flatMap((f) => ['-f', f])];
}

/** argv run directly, or inside the compose service when one is configured. */
export function inService(compose: ComposeTarget | undefined, argv: string[]): string[] {
  return compose ? [...composeBase(compose), 'exec', '-T', compose.service, ...argv] : argv;
}
