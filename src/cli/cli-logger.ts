import { defaultLogger } from '../adapters/log/default-logger.ts';
import type { Logger } from '../ports/logger.ts';

/**
 * The logger of a long-running CLI process (`relay`, `serve`): `defaultLogger` bound to its component,
 * writing to stderr so that stdout stays the command's own output (`relay --once` prints its count there).
 * JSON lines unless stderr is a terminal or `ZEROLOSS_LOG_FORMAT=pretty`; level from `ZEROLOSS_LOG_LEVEL`,
 * or debug with `--verbose`.
 */
export function cliLogger(component: string, options: { verbose?: boolean } = {}): Logger {
  return defaultLogger({
    destination: process.stderr,
    bindings: { component },
    ...(options.verbose ? { level: 'debug' as const } : {}),
  });
}

/** The help paragraph of every command that logs through `cliLogger`. */
export const logHelp = `  Logs go to stderr as JSON lines (pino's shape; "component" names the process), or as readable lines
  when stderr is a terminal. ZEROLOSS_LOG_FORMAT=json|pretty chooses, ZEROLOSS_LOG_LEVEL=debug|info|warn|
  error|silent sets the level (default info), ZEROLOSS_LOG_REDACT=field,path.to.field blanks fields.`;
