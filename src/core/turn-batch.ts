/**
 * Collects what is asked for during one turn of the event loop and hands it over together, so several
 * callers' requests become one statement. setImmediate, not a microtask: callers released by one database
 * answer (the consumer's lanes after a shared commit) arrive over several I/O callbacks of the same turn.
 */
export function turnBatch<T>(flush: (items: T[]) => void): (item: T) => void {
  let pending: T[] = [];
  return (item) => {
    pending.push(item);
    if (pending.length > 1) return;
    setImmediate(() => {
      const items = pending;
      pending = [];
      flush(items);
    });
  };
}
