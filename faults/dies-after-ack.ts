import type { OutgoingRecord } from '../src/core/envelope.ts';
import type { Publisher } from '../src/ports/transport.ts';

/**
 * The crash between the broker's ack and the relay recording it, for relay child processes: the wrapped
 * publisher sends, and once the broker has acknowledged any record, prints `acked N` on stdout and kills
 * its own process (SIGKILL) before the relay hears the answer. The fault lives in this wrapper of the
 * Publisher port, never in the relay.
 */
export function diesAfterAck(inner: Publisher): Publisher {
  return {
    async publish(records: OutgoingRecord[]) {
      const outcomes = await inner.publish(records);
      if (outcomes.some((o) => o.ok)) {
        process.stdout.write(`acked ${outcomes.filter((o) => o.ok).length}\n`);
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => {});
      }
      return outcomes;
    },
    close: () => inner.close(),
  };
}

/** A child process's required environment variable, or a clear error naming the child and the variable. */
export function requiredEnv(child: string): (name: string) => string {
  return (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${child}: ${name} is not set`);
    return value;
  };
}
