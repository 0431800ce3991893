/**
 * `zeroloss/table-log`: the embedded transport, a partitioned log in the store's own database.
 *
 *   const transport = tableLog(store)
 */
export { tableLog, type TableLogOptions, type TableLogTransport } from '../adapters/table-log/table-log-transport.ts';
export type { RetentionOptions } from '../adapters/table-log/table-log-admin.ts';
