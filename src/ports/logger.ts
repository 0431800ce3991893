/** Structured fields of one log line (message id, topic, partition, error, ...). */
export type LogFields = Record<string, unknown>;

/**
 * The logger the long-running parts (relay, consumer runtime, CLI processes) write operational events to:
 * an object of fields and a message, pino's calling convention, so a pino logger is one as it is. Pass your
 * own as `logger`; `child` binds fields (component, source, group) to every line written through it.
 */
export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  child(bindings: LogFields): Logger;
}

/** Writes nothing: the default of the library's features, which do not print to the host's stdout uninvited. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
