// The worker's log: the SDK's messages (and core's, forwarded) as text lines or one JSON object per line. An
// expected, typed failure (MissingPath, InsufficientSpace, Stalled …) is an answer, not a bug: the SDK logs it
// with a stack trace through node_modules; here it becomes one line naming the step, the run and the cause.
import { inspect } from 'node:util';
import type { Logger, LogLevel, LogMetadata } from '@temporalio/common';
import { PERMANENT_ERRORS, RUN_FAILURES } from '../shared/errors';

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
/** The SDK puts the entry's time (ns since the epoch) under this symbol (@temporalio/worker LogTimestamp). */
const LOG_TIMESTAMP = Symbol.for('log_timestamp');

/**
 * Failures Lifeboat typed on purpose (its whole vocabulary) are answers; only ActivityFailed (an untyped error,
 * a bug) and errors without a Lifeboat type keep their stack.
 */
export const EXPECTED_FAILURES: ReadonlySet<string> = new Set([...PERMANENT_ERRORS, ...RUN_FAILURES.filter((t) => t !== 'ActivityFailed'), 'TemporalUnavailable']);

export interface LogEntry {
  time: Date;
  level: LogLevel;
  message: string;
  meta: Record<string, unknown>;
}

export class LifeboatLogger implements Logger {
  private readonly severity: number;

  constructor(
    readonly format: LogFormat = 'text',
    readonly level: LogLevel = 'INFO',
    private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  ) {
    this.severity = LEVELS.indexOf(level);
  }

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (LEVELS.indexOf(level) < this.severity) return;
    const { [LOG_TIMESTAMP]: nanos, ...rest } = (meta ?? {}) as Record<string | symbol, unknown>;
    const time = typeof nanos === 'bigint' ? new Date(Number(nanos / 1_000_000n)) : new Date();
    const entry = condense({ time, level, message, meta: rest as Record<string, unknown> });
    this.write(this.format === 'json' ? jsonLine(entry) : textLine(entry));
  }

  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/**
 * "Activity failed" / "Workflow failed" with an expected failure: the error becomes its type and message, and
 * the line names the step and run. The task token (opaque, long) goes too.
 */
export function condense(entry: LogEntry): LogEntry {
  const failure = expectedFailure(entry.message, entry.meta.error);
  if (!failure) return entry;
  const { error: _error, taskToken: _token, ...meta } = entry.meta;
  const what = [meta.activityType ?? meta.workflowType, meta.workflowId ? `workflow ${String(meta.workflowId)}` : undefined].filter(Boolean).join(' in ');
  const message = `${entry.message}: ${what ? `${what}: ` : ''}${failure.type ? `${failure.type}: ` : ''}${failure.message}`;
  return { ...entry, message, meta: { ...meta, ...(failure.type ? { errorType: failure.type } : {}), errorMessage: failure.message, condensed: true } };
}

/**
 * The first expected type along the cause chain (a workflow's failure wraps its activity's); duck-typed, as
 * workflow errors come from another realm. A workflow's failure reaches the logger from the workflow thread by
 * structured clone, which keeps only name, message and stack: one Lifeboat raised on purpose has no stack
 * (src/workflows/failures.ts `plain`), a bug in workflow code has one.
 */
function expectedFailure(message: string, error: unknown): { type?: string; message: string } | undefined {
  let e = error;
  for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
    const { type, message: text, cause } = e as { type?: unknown; message?: unknown; cause?: unknown };
    if (typeof type === 'string' && EXPECTED_FAILURES.has(type)) return { type, message: oneLine(String(text ?? '')) };
    e = cause;
  }
  const cloned = error as { name?: unknown; message?: unknown; stack?: unknown } | undefined;
  if (message === 'Workflow failed' && cloned && typeof cloned.message === 'string' && cloned.name === 'Error' && !cloned.stack) return { message: oneLine(cloned.message) };
  return undefined;
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ⏎ ').trim();

function textLine({ time, level, message, meta }: LogEntry): string {
  if (meta.condensed) return `${time.toISOString()} [${level}] ${message}`;
  // One line per entry; only an error's stack (a bug's) spans more.
  const rest = Object.keys(meta).length ? ` ${inspect(meta, { breakLength: Infinity, colors: false, depth: 4 })}` : '';
  return `${time.toISOString()} [${level}] ${message}${rest}`;
}

function jsonLine({ time, level, message, meta }: LogEntry): string {
  const { condensed: _c, ...rest } = meta;
  const base = { time: time.toISOString(), level, message };
  try {
    return JSON.stringify({ ...base, ...(Object.keys(rest).length ? { meta: rest } : {}) }, jsonSafe);
  } catch {
    // A circular meta: still one line, still JSON.
    return JSON.stringify({ ...base, meta: inspect(rest, { breakLength: Infinity, depth: 3 }) });
  }
}

/** Errors keep name, type, message, stack and cause; bigints become strings; nothing throws. */
function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error || (value && typeof value === 'object' && 'stack' in value && 'message' in value)) {
    const e = value as Error & { type?: unknown; cause?: unknown };
    return { name: e.name, ...(e.type !== undefined ? { type: e.type } : {}), message: e.message, stack: e.stack, ...(e.cause !== undefined ? { cause: e.cause } : {}) };
  }
  if (typeof value === 'function' || typeof value === 'symbol') return inspect(value);
  return value;
}
