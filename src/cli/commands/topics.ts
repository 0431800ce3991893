import { ensureTopic } from '../../adapters/kafka/kafka-admin.ts';
import { kafka } from '../../adapters/kafka/kafka-transport.ts';
import { ZerolossError } from '../../core/errors.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { kafkaSettings } from '../kafka-connection-options.ts';

export const topicsHelp = `Usage: zeroloss topics ensure <topic> --partitions <n> --kafka <brokers> [--replication-factor <n>] [--config k=v ...] [--json]

Creates the topic with the durability profile (replication factor 3 or the broker count if smaller,
min.insync.replicas 2, unclean leader election off), or checks an existing topic and reports how it
differs. Never shrinks or silently changes an existing topic.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function topicsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    partitions: { type: 'string' },
    'replication-factor': { type: 'string' },
    config: { type: 'string', multiple: true },
  });
  if (values.help || positionals[0] !== 'ensure' || !positionals[1]) {
    console.log(topicsHelp);
    return values.help ? 0 : 2;
  }
  const configs: Record<string, string> = {};
  for (const entry of values.config ?? []) {
    const eq = entry.indexOf('=');
    if (eq < 1) throw new ZerolossError('ZL_INVALID_CONFIG', `--config takes key=value, got ${entry}`);
    configs[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  // The bundle's admin client; the transport's own ensureTopic takes no replication factor or topic configs.
  const transport = kafka({ ...kafkaSettings(values), inspector: { clientId: 'zeroloss-admin' } });
  try {
    const result = await ensureTopic(transport.inspector.admin, {
      topic: positionals[1],
      partitions: intOption(values.partitions, 'partitions', 1),
      replicationFactor:
        values['replication-factor'] === undefined ? undefined : intOption(values['replication-factor'], 'replication-factor', 3),
      configs,
    });
    print(values.json, result, () =>
      [
        `${result.created ? 'created' : 'exists'}: ${result.topic} (partitions ${result.partitions}, replication factor ${result.replicationFactor})`,
        ...result.findings.map((f) => `  ${f.severity}: ${f.setting} is ${f.actual}, expected ${f.expected} — ${f.message}`),
      ].join('\n'),
    );
    return 0;
  } finally {
    await transport.close();
  }
}
