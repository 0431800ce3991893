import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TopicRecord } from './topic-reader.ts';

const READER = fileURLToPath(new URL('./ReadCommitted.java', import.meta.url));
const KAFKA_JARS = fileURLToPath(new URL('../infra/kafka/.libs/*', import.meta.url));

/**
 * Every committed record of a topic written in Kafka transactions, as a read_committed consumer sees it:
 * records of aborted transactions left out, each committed one once per time it was committed.
 *
 * Read with Apache Kafka's own Java client (faults/ReadCommitted.java, the broker's jars), not with
 * @platformatic/kafka: the checker must not share the client of the code under test, and this one's
 * read_committed filter (2.12.1, Consumer #filterUncommittedMessages) keeps one aborted range per producer
 * id per fetch and lets through an aborted range whose abort marker is not in the same fetch, so aborted
 * records can reach its readers.
 *
 * `waitStableMs` > 0: wait until no transaction is open (last stable offset = high watermark) so the read
 * is final, and fail if that does not happen in time; 0: what is committed now (for drain progress).
 */
export function readCommittedTopic(
  topic: string,
  brokers: string[],
  waitStableMs: number,
  timeoutMs = 180_000,
): Promise<Array<TopicRecord & { input: string; worker: string }>> {
  return new Promise((resolve, reject) => {
    execFile(
      'java',
      ['-Xmx256m', '-cp', KAFKA_JARS, READER, brokers.join(','), topic, String(waitStableMs)],
      { timeout: timeoutMs, maxBuffer: 512 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`reading ${topic} (read_committed, Java client): ${error.message}\n${stderr.slice(-2_000)}`));
          return;
        }
        const records: Array<TopicRecord & { input: string; worker: string }> = [];
        for (const line of stdout.split('\n')) {
          // Only the reader's record lines; anything else on stdout is the Java client's logging.
          if (!line.startsWith('{"p":')) continue;
          const r = JSON.parse(line) as {
            p: number;
            o: number;
            k: string | null;
            id: string | null;
            seq: string | null;
            in: string | null;
            w: string | null;
          };
          records.push({
            partition: r.p,
            offset: BigInt(r.o),
            key: r.k ?? '',
            id: r.id ?? '',
            seq: Number(r.seq ?? Number.NaN),
            input: r.in ?? '',
            worker: r.w ?? '',
          });
        }
        resolve(records);
      },
    );
  });
}
