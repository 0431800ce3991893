import type { Admin } from '@platformatic/kafka';
import { kafka } from './kafka-driver.ts';
import { type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';

/** The durability profile (P6). A topic below it can lose acknowledged messages when one broker fails. */
export const DURABILITY_PROFILE = {
  replicationFactor: 3,
  minInsyncReplicas: 2,
  uncleanLeaderElection: false,
} as const;

/**
 * Room a `.dlq` or `.retry.<n>` topic needs above its source topic's max.message.bytes. A copy is the
 * original record plus failure headers, whose text the consumer bounds (FAILURE_HEADER_BYTES in
 * consumer/delivery.ts) so that they stay under 5 KiB even with topic and group names at their limits.
 */
export const COPY_HEADROOM_BYTES = 8_192;

/** Kafka's default max.message.bytes of a topic (one record batch), when the broker reports none. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

export interface DoctorFinding {
  severity: 'error' | 'warning';
  /** `topic:<name>`, `broker:<id>` or `producer`. */
  subject: string;
  setting: string;
  actual: string;
  expected: string;
  message: string;
}

export interface ProducerSettings {
  acks?: string | number;
  idempotent?: boolean;
  deliveryTimeoutMs?: number;
}

/** An admin client for the brokers, or for a connection with TLS and SASL. */
export function createAdmin(connection: string[] | KafkaConnectionOptions, clientId = 'zeroloss-admin'): Admin {
  const options = Array.isArray(connection) ? { brokers: connection } : connection;
  return new kafka.Admin({ clientId, ...kafkaClientConnection(options, 'kafka admin'), timeout: 10_000, retries: 2 });
}

export interface EnsureTopicOptions {
  topic: string;
  partitions: number;
  /** Default: the profile's 3, or the broker count when fewer brokers exist (a dev cluster). */
  replicationFactor?: number;
  configs?: Record<string, string>;
}

export interface EnsureTopicResult {
  topic: string;
  created: boolean;
  partitions: number;
  replicationFactor: number;
  findings: DoctorFinding[];
}

/**
 * Creates a topic with the durability profile, or checks an existing one. Never shrinks or silently
 * changes an existing topic: differences are reported as findings.
 */
export async function ensureTopic(admin: Admin, options: EnsureTopicOptions): Promise<EnsureTopicResult> {
  validateTopic(options.topic);
  if (!Number.isInteger(options.partitions) || options.partitions < 1) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `partitions must be a positive integer, got ${options.partitions}`);
  }
  const metadata = await admin.metadata({ topics: [] });
  const brokerCount = metadata.brokers.size;
  const existing = (await admin.listTopics()).includes(options.topic);
  let created = false;
  if (!existing) {
    const replicationFactor = options.replicationFactor ?? Math.min(DURABILITY_PROFILE.replicationFactor, brokerCount);
    const minIsr = Math.max(1, Math.min(DURABILITY_PROFILE.minInsyncReplicas, replicationFactor - 1));
    const configs = {
      'min.insync.replicas': String(minIsr),
      'unclean.leader.election.enable': 'false',
      ...options.configs,
    };
    try {
      await admin.createTopics({
        topics: [options.topic],
        partitions: options.partitions,
        replicas: replicationFactor,
        configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
      });
      created = true;
    } catch (error) {
      // Another process created it between our check and our create: that is the outcome we wanted.
      if (
        !String((error as Error).message).includes('TOPIC_ALREADY_EXISTS') &&
        !JSON.stringify(error, replacer).includes('TOPIC_ALREADY_EXISTS')
      ) {
        throw error;
      }
    }
  }
  const [report] = await inspectTopics(admin, [options.topic]);
  if (!report) throw new ZerolossError('ZL_INVALID_TOPIC', `topic ${options.topic} not found after create`);
  const findings = [...report.findings];
  if (report.partitions < options.partitions) {
    findings.push({
      severity: 'warning',
      subject: `topic:${options.topic}`,
      setting: 'partitions',
      actual: String(report.partitions),
      expected: `>= ${options.partitions}`,
      message: 'topic exists with fewer partitions than asked; raise them with the backlog tools (changes key placement)',
    });
  }
  return { topic: options.topic, created, partitions: report.partitions, replicationFactor: report.replicationFactor, findings };
}

function replacer(_key: string, value: unknown) {
  return typeof value === 'bigint' ? value.toString() : value;
}

interface TopicReport {
  topic: string;
  partitions: number;
  replicationFactor: number;
  findings: DoctorFinding[];
}

async function inspectTopics(admin: Admin, topics: string[]): Promise<TopicReport[]> {
  if (topics.length === 0) return [];
  const metadata = await admin.metadata({ topics, forceUpdate: true });
  const configs = await admin.describeConfigs({
    resources: topics.map((t) => ({ resourceType: kafka.ConfigResourceTypes.TOPIC, resourceName: t })),
  });
  const byTopic = new Map(configs.map((c) => [c.resourceName, new Map(c.configs.map((e) => [e.name, e.value ?? '']))]));
  return topics.map((topic) => {
    const meta = metadata.topics.get(topic);
    const partitions = meta?.partitionsCount ?? 0;
    const replicationFactor = Math.min(...(meta?.partitions ?? []).map((p) => p.replicas.length));
    const cfg = byTopic.get(topic) ?? new Map<string, string>();
    const findings: DoctorFinding[] = [];
    const subject = `topic:${topic}`;
    const rf = Number.isFinite(replicationFactor) ? replicationFactor : 0;
    if (rf < DURABILITY_PROFILE.replicationFactor) {
      findings.push({
        severity: 'error',
        subject,
        setting: 'replication.factor',
        actual: String(rf),
        expected: `>= ${DURABILITY_PROFILE.replicationFactor}`,
        message: 'one broker failure can lose acknowledged messages or stop the topic',
      });
    }
    const minIsr = Number(cfg.get('min.insync.replicas') ?? '1');
    if (minIsr < DURABILITY_PROFILE.minInsyncReplicas) {
      findings.push({
        severity: 'error',
        subject,
        setting: 'min.insync.replicas',
        actual: String(minIsr),
        expected: `>= ${DURABILITY_PROFILE.minInsyncReplicas}`,
        message: 'acks=all is satisfied by a single replica: an ack does not mean the message is on two brokers',
      });
    } else if (rf > 0 && minIsr >= rf) {
      findings.push({
        severity: 'warning',
        subject,
        setting: 'min.insync.replicas',
        actual: String(minIsr),
        expected: `< replication.factor (${rf})`,
        message: 'any one broker down stops all writes to this topic',
      });
    }
    if ((cfg.get('unclean.leader.election.enable') ?? 'false') === 'true') {
      findings.push({
        severity: 'error',
        subject,
        setting: 'unclean.leader.election.enable',
        actual: 'true',
        expected: 'false',
        message: 'an out-of-sync replica may become leader and drop acknowledged messages',
      });
    }
    return { topic, partitions, replicationFactor: rf, findings };
  });
}

/**
 * Each `.dlq` / `.retry.<n>` topic of a checked source must take a record the source takes plus the failure
 * headers. Where it cannot, nothing is lost or stalled (the dead letter stays in the dead_letter table alone,
 * a retry runs in place, both with a `copy-rejected` alarm), so this is a warning, not an error.
 */
async function copyRoomFindings(admin: Admin, checked: string[], all: string[]): Promise<DoctorFinding[]> {
  const pairs: Array<{ source: string; copy: string }> = [];
  for (const source of checked) {
    if (/\.(retry\.\d+|dlq)$/.test(source)) continue;
    for (const topic of all) {
      const suffix = topic.startsWith(`${source}.`) ? topic.slice(source.length + 1) : undefined;
      if (suffix !== undefined && /^(dlq|retry\.\d+)$/.test(suffix)) pairs.push({ source, copy: topic });
    }
  }
  if (pairs.length === 0) return [];
  const names = [...new Set(pairs.flatMap((p) => [p.source, p.copy]))];
  const configs = await admin.describeConfigs({
    resources: names.map((t) => ({ resourceType: kafka.ConfigResourceTypes.TOPIC, resourceName: t })),
  });
  const limit = new Map(
    configs.map((c) => {
      const value = Number(c.configs.find((e) => e.name === 'max.message.bytes')?.value);
      return [c.resourceName, Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MAX_MESSAGE_BYTES];
    }),
  );
  const findings: DoctorFinding[] = [];
  for (const { source, copy } of pairs) {
    const sourceLimit = limit.get(source) ?? DEFAULT_MAX_MESSAGE_BYTES;
    const copyLimit = limit.get(copy) ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (copyLimit >= sourceLimit + COPY_HEADROOM_BYTES) continue;
    const fallback = copy.endsWith('.dlq')
      ? 'its dead letter is then kept in the dead_letter table only'
      : 'its retries then run in place, holding its key';
    findings.push({
      severity: 'warning',
      subject: `topic:${copy}`,
      setting: 'max.message.bytes',
      actual: String(copyLimit),
      expected: `>= ${sourceLimit + COPY_HEADROOM_BYTES} (${source} allows ${sourceLimit}, plus ${COPY_HEADROOM_BYTES} for failure headers)`,
      message: `a record near ${source}'s limit plus the failure headers will not fit; ${fallback} (alarm copy-rejected)`,
    });
  }
  return findings;
}

function producerFindings(settings: ProducerSettings): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  const acks = String(settings.acks ?? 'all');
  if (acks !== 'all' && acks !== '-1') {
    findings.push({
      severity: 'error',
      subject: 'producer',
      setting: 'acks',
      actual: acks,
      expected: 'all',
      message: 'the broker may acknowledge a message only the leader has, and lose it on failover',
    });
  }
  if (settings.idempotent === false) {
    findings.push({
      severity: 'error',
      subject: 'producer',
      setting: 'enable.idempotence',
      actual: 'false',
      expected: 'true',
      message: 'broker-side retries can duplicate or reorder messages within a partition',
    });
  }
  if (settings.deliveryTimeoutMs !== undefined && !(settings.deliveryTimeoutMs > 0 && Number.isFinite(settings.deliveryTimeoutMs))) {
    findings.push({
      severity: 'error',
      subject: 'producer',
      setting: 'delivery.timeout.ms',
      actual: String(settings.deliveryTimeoutMs),
      expected: 'a finite positive bound',
      message: 'an unbounded send keeps a relay lease past its expiry',
    });
  }
  return findings;
}

export interface DoctorReport {
  ok: boolean;
  brokers: number;
  topics: Array<{ topic: string; partitions: number; replicationFactor: number }>;
  findings: DoctorFinding[];
}

/**
 * Checks live topics and producer settings against the durability profile, and that each checked topic's
 * `.dlq` / `.retry.<n>` topics leave room for a copy of its largest record. `topics` defaults to every
 * non-internal topic. `ok` is false when any finding is an error.
 */
export async function doctor(admin: Admin, options: { topics?: string[]; producer?: ProducerSettings } = {}): Promise<DoctorReport> {
  const metadata = await admin.metadata({ topics: [] });
  const all = await admin.listTopics();
  const topics = options.topics ?? all.filter((t) => !t.startsWith('__'));
  const missing = topics.filter((t) => !all.includes(t));
  const existing = topics.filter((t) => all.includes(t));
  const reports = await inspectTopics(admin, existing);
  const findings = [
    ...missing.map<DoctorFinding>((topic) => ({
      severity: 'error',
      subject: `topic:${topic}`,
      setting: 'exists',
      actual: 'false',
      expected: 'true',
      message: 'topic does not exist (auto-creation would use broker defaults, not the profile)',
    })),
    ...reports.flatMap((r) => r.findings),
    ...(await copyRoomFindings(admin, existing, all)),
    ...producerFindings(options.producer ?? { acks: 'all', idempotent: true }),
  ];
  return {
    ok: findings.every((f) => f.severity !== 'error'),
    brokers: metadata.brokers.size,
    topics: reports.map(({ topic, partitions, replicationFactor }) => ({ topic, partitions, replicationFactor })),
    findings,
  };
}
