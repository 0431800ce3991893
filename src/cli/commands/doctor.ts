import { readFileSync } from 'node:fs';
import { createAdmin, doctor, type ProducerSettings } from '../../adapters/kafka/kafka-admin.ts';
import { connectionOptions, kafkaBrokers, parse, print } from '../args.ts';

export const doctorHelp = `Usage: zeroloss doctor --kafka <brokers> [--topic <name> ...] [--producer-config <file.json>] [--json]

Checks live topics (all non-internal ones, or those named) and producer settings against the
durability profile: replication factor >= 3, min.insync.replicas >= 2, unclean leader election off,
acks=all, idempotence on, bounded delivery timeout. Warns when a topic's <topic>.dlq or
<topic>.retry.<n> has a max.message.bytes less than 8 KiB above the topic's own (a copy of a record near
the limit, plus failure headers, would not fit). Exits 1 when any check is an error.

  --producer-config <file>  JSON with {"acks", "idempotent", "deliveryTimeoutMs"} of a producer to check
                            (default: zeroloss's own relay producer, which always uses the profile)`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    topic: { type: 'string', multiple: true },
    'producer-config': { type: 'string' },
  });
  if (values.help) {
    console.log(doctorHelp);
    return 0;
  }
  const producer = values['producer-config']
    ? (JSON.parse(readFileSync(values['producer-config'], 'utf8')) as ProducerSettings)
    : undefined;
  const admin = createAdmin(kafkaBrokers(values.kafka));
  try {
    const report = await doctor(admin, { topics: values.topic, producer });
    print(values.json, report, () =>
      [
        `brokers: ${report.brokers}, topics checked: ${report.topics.length}`,
        ...report.findings.map(
          (f) => `${f.severity.toUpperCase()} ${f.subject} ${f.setting}=${f.actual} (expected ${f.expected}): ${f.message}`,
        ),
        report.ok ? 'OK: durability profile holds' : 'FAIL: the durability profile is broken (see errors above)',
      ].join('\n'),
    );
    return report.ok ? 0 : 1;
  } finally {
    await admin.close();
  }
}
