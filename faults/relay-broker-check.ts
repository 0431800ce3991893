/**
 * The long variant of test/integration/relay-broker-check.test.ts (acceptance 5 of issue 16): 1,000
 * in-process crash points between the broker's ack and the relay recording it, on the table log and on
 * Kafka, and the same run without the broker check for comparison. Prints one JSON line per run and
 * exits non-zero when a run with the check resent an acknowledged message, lost one, or broke a key's order.
 *
 *   npx node faults/relay-broker-check.ts [--crashes 1000] [--kafka-crashes 1000] [--batch 2] [--without-check]
 */
import { parseArgs } from 'node:util';
import { KafkaInspector } from '../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { tableLog } from '../src/adapters/table-log/table-log-transport.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../test/helpers/kafka.ts';
import { freshSchema } from '../test/helpers/pg.ts';
import { type CrashScenarioSummary, crashScenario } from '../test/helpers/relay-crash-after-ack.ts';

const { values } = parseArgs({
  options: {
    crashes: { type: 'string', default: '1000' },
    'kafka-crashes': { type: 'string', default: '1000' },
    batch: { type: 'string', default: '2' },
    'without-check': { type: 'boolean', default: false },
  },
});
const crashes = Number(values.crashes);
const kafkaCrashes = Number(values['kafka-crashes']);
const batchSize = Number(values.batch);
let failed = false;

function report(transport: string, withCheck: boolean, summary: CrashScenarioSummary) {
  process.stdout.write(`${JSON.stringify({ transport, withCheck, ...summary })}\n`);
  const bad = summary.resendsOfAcked > 0 || summary.lost > 0 || summary.duplicated > 0 || summary.outOfOrder > 0;
  if (withCheck && bad) failed = true;
}

for (const withCheck of values['without-check'] ? [true, false] : [true]) {
  const env = await freshSchema('zlbchkf');
  try {
    if (crashes > 0) {
      const transport = tableLog({ db: env.db, schema: env.schema });
      await transport.ensureTopic('zl-bchk-log', 3);
      const summary = await crashScenario({
        ...env,
        topic: 'zl-bchk-log',
        publisher: transport.publisher,
        inspector: transport.inspector,
        relayInspector: withCheck ? transport.inspector : undefined,
        crashes,
        batchSize,
      });
      report('table-log', withCheck, summary);
    }
    if (kafkaCrashes > 0) {
      const topic = uniqueTopic('zl-bchk');
      await createTopic(topic, 3);
      const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 10_000 });
      const inspector = new KafkaInspector({ brokers: KAFKA_BROKERS });
      try {
        const summary = await crashScenario({
          ...env,
          topic,
          publisher,
          inspector,
          relayInspector: withCheck ? inspector : undefined,
          crashes: kafkaCrashes,
          batchSize,
        });
        report('kafka', withCheck, summary);
      } finally {
        await publisher.close();
        await inspector.close();
      }
    }
  } finally {
    await env.cleanup();
  }
}
process.exit(failed ? 1 : 0);
