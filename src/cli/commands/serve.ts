import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { startHealthServer } from '../../adapters/http/health-server.ts';
import { databaseCheck } from '../../operations/database-check.ts';
import { OpsCollector } from '../../operations/ops-collector.ts';
import type { ControlHandlers } from '../../operations/control-channel.ts';
import { startProducerControl } from '../../operations/producer-control.ts';
import { storeReceipts } from '../../operations/store-receipts.ts';
import { PostgresReceiptStore } from '../../adapters/postgres/postgres-receipt-store.ts';
import { CONTROL_TOPIC } from '../../core/control-message.ts';
import { createOpsMetrics } from '../../operations/ops-metrics.ts';
import { ReconcileScheduler } from '../../operations/reconcile-scheduler.ts';
import { cleanup } from '../../operations/retention.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { ZerolossError } from '../../core/errors.ts';
import { connectionOptions, intOption, parse, pgUrl } from '../args.ts';
import { cliLogger, logHelp } from '../cli-logger.ts';
import { databaseWalSlots } from '../wal-slots.ts';
import { escalationCommand } from '../escalation-command.ts';
import { httpEndpoint, httpHelp, httpOptions } from '../http-options.ts';
import { backlogPolicyHelp, backlogPolicyOptions, startBacklogPolicy } from '../backlog-policy-options.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const serveHelp = `Usage: zeroloss serve --pg <url> (--kafka <brokers> | --table-log | --redis-streams <url> | --rabbitmq <url>)
                     [--http-port <n>] [options]

The operations daemon: one Prometheus endpoint (/metrics) for the whole schema — producer (unsent rows by
state, oldest unsent age, send successes and failures, compensation resends, commit-to-ack latency),
consumers (applied effects, end-to-end latency, lag per group and partition, open dead letters, sequence
alarms) and reconciliation (runs, verdicts, missing messages, repairs, resends) — plus scheduled
reconciliation (the recent window every few minutes, the previous day every night; any gap raises
zeroloss_reconcile_gaps_total) and, optionally, scheduled retention. Runs until SIGTERM/SIGINT.
Ready-made alert rules: ops/alert-rules.yml.

${httpHelp(30)}
                              port default 9465; /readyz is 503 while the database does not answer
                              \`select 1\` or the broker does not list its topics, each within 2 s
  --collect-every <duration>  how often the metrics are refreshed from Postgres and the broker (default 15s)
  --group <group>             groups to report lag for (repeatable; default the groups the schema knows)
  --reconcile-every <dur>     recent-window reconciliation interval, or 'off' (default 5m)
  --reconcile-window <dur>    the recent window's length (default 15m)
  --reconcile-settle <dur>    how old a message must be to be reconciled (default 2m)
  --nightly-hour <h>          UTC hour of the nightly run over the previous day, or 'off' (default 2)
  --repair                    re-publish missing messages automatically, up to --max-auto-repair per run
  --max-auto-repair <n>       the escalation threshold (default 1000). A run that finds more missing
                              messages escalates, with or without --repair: nothing is re-published, the
                              run is held for a person (zeroloss reconcile --held, --approve <run>), an
                              error is logged, zeroloss_reconcile_escalations_total rises and
                              zeroloss_reconcile_held_reports counts the runs waiting
  --on-escalate <command>     the emergency plan: a shell command run on each escalation with the held
                              report as JSON on stdin and ZEROLOSS_RUN_ID set. A non-zero exit or a
                              timeout is logged and counted (zeroloss_reconcile_escalation_hook_failures_total);
                              serve goes on
  --on-escalate-timeout <dur> the command is killed after this long (default 30s)
  --retention-every <dur>     run 'zeroloss cleanup' with its defaults this often, or 'off' (default off)
  --config-file <f.json>      its "sources": state-column tables whose unsent, parked and stuck rows the
                              producer gauges report beside the outbox's (label source="<name>"), and
                              whose messages the control channel answers for like the outbox's

Control channel (docs/consumer.md, C9): serve reads the control topic in the group zeroloss-serve.<schema>
and answers consumers' resend requests for this outbox's producers and the --config-file sources' (by their
producer id; resent as 'zeroloss resend' does, audited as control:<group>); it publishes the producer marks
(newest sent sequence per key, sources' included) so consumers find a loss at the tail. It stores the
receipts consumers send of what they applied, for the outbox's and the sources' messages (two-way
confirmation: shown by trace and status, docs/operations.md). Bad control records are skipped and
counted (zeroloss_control_invalid_total).
  --control <topic>           the control topic, or 'off' (default ${CONTROL_TOPIC})
  --marks-every <dur>         how often the producer marks go out, or 'off' (default 10s)
  --pg <url>, --schema <name>, --kafka <brokers>
${brokerHelp}
${logHelp}

${backlogPolicyHelp}

Dashboard (docs/dashboard.md): overview with the last hour's plots, parked rows, dead letters, the outbox,
a message's whole trail, and audited actions (release, discard, replay, resend, reconcile).
  --dashboard                 serve it, on its own port
  --dashboard-port <n>        default 9466
  --host <addr>               the dashboard's bind address (default 127.0.0.1); any other needs a token
  --token-file <file>         the token every dashboard request but /healthz, /readyz, /metrics must carry
                              (Bearer, or Basic auth with the token as password); or ZEROLOSS_DASHBOARD_TOKEN
  --redact <field>            payload field to mask in dashboard pages (repeatable)

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    ...httpOptions,
    'collect-every': { type: 'string' },
    group: { type: 'string', multiple: true },
    'reconcile-every': { type: 'string' },
    'reconcile-window': { type: 'string' },
    'reconcile-settle': { type: 'string' },
    'nightly-hour': { type: 'string' },
    repair: { type: 'boolean' },
    'max-auto-repair': { type: 'string' },
    'on-escalate': { type: 'string' },
    'on-escalate-timeout': { type: 'string' },
    'retention-every': { type: 'string' },
    control: { type: 'string' },
    'marks-every': { type: 'string' },
    dashboard: { type: 'boolean' },
    'dashboard-port': { type: 'string' },
    host: { type: 'string' },
    'token-file': { type: 'string' },
    redact: { type: 'string', multiple: true },
    ...brokerOptions,
    ...backlogPolicyOptions,
  });
  if (values.help) {
    console.log(serveHelp);
    return 0;
  }
  const off = (v: string | undefined) => v === 'off';
  const dashboard = dashboardSettings(values);
  // A bind the dashboard must refuse fails before anything connects.
  if (dashboard) (await import('../../dashboard/dashboard-security.ts')).checkBind(dashboard.host, dashboard.token);
  const log = cliLogger('serve');
  const escalateTimeoutMs = parseDuration(values['on-escalate-timeout'] ?? '30s');
  return withOps(values, 'required', async (ops) => {
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector(
      { store: ops.store, broker: ops.broker, metrics, sources: await ops.sources(), walSlots: databaseWalSlots(ops.db) },
      { groups: values.group },
    );
    const scheduler = new ReconcileScheduler(
      {
        store: ops.store,
        broker: ops.broker,
        brokerNotRead: ops.brokerNotRead,
        publisher: values.repair ? ops.publisher() : undefined,
        metrics,
      },
      {
        recent: off(values['reconcile-every'])
          ? false
          : {
              everyMs: parseDuration(values['reconcile-every'] ?? '5m'),
              windowMs: parseDuration(values['reconcile-window'] ?? '15m'),
              settleMs: parseDuration(values['reconcile-settle'] ?? '2m'),
            },
        nightly: off(values['nightly-hour']) ? false : { atUtcHour: intOption(values['nightly-hour'], 'nightly-hour', 2) },
        repair: values.repair ?? false,
        maxAutoRepair: intOption(values['max-auto-repair'], 'max-auto-repair', 1000),
        groups: values.group,
        ...(values['on-escalate'] !== undefined ? { onEscalate: escalationCommand(values['on-escalate'], escalateTimeoutMs) } : {}),
        escalateTimeoutMs,
      },
    );
    scheduler.on('escalated', (r) =>
      log.error(
        { window: r.kind, from: r.window.from, to: r.window.to, runId: r.runId, held: r.held?.count, limit: r.held?.limit },
        `ESCALATED: ${r.held?.count} missing messages in the ${r.kind} window ${r.window.from}..${r.window.to} exceed the automatic repair limit of ${r.held?.limit}; run ${r.runId} is held: zeroloss reconcile --approve ${r.runId} --reason …`,
      ),
    );
    scheduler.on('hookFailed', (e, r) =>
      log.error({ err: e, task: 'on-escalate', runId: r.runId }, `escalation hook failed for run ${r.runId}: ${e.message}`),
    );
    scheduler.on('gap', (r) => {
      const missingInGroups = r.groups.reduce((n, g) => n + g.missing, 0);
      log.warn(
        {
          window: r.kind,
          from: r.window.from,
          to: r.window.to,
          missingOnBroker: r.counts.missingOnBroker,
          missingInGroups,
          verdict: r.verdict,
        },
        `GAP in ${r.kind} window ${r.window.from}..${r.window.to}: ${r.counts.missingOnBroker} missing on the broker, ${missingInGroups} in groups; verdict ${r.verdict}`,
      );
    });
    scheduler.on('error', (e) => log.error({ err: e, task: 'reconcile' }, `reconcile: ${e.message}`));

    const timers: NodeJS.Timeout[] = [];
    const collect = () => collector.collect().catch((e: Error) => log.error({ err: e, task: 'metrics' }, `metrics: ${e.message}`));
    await collect();
    timers.push(setInterval(collect, parseDuration(values['collect-every'] ?? '15s')));
    if (values['retention-every'] && !off(values['retention-every'])) {
      timers.push(
        setInterval(
          () =>
            cleanup({ store: ops.store, metrics }).catch((e: Error) => log.error({ err: e, task: 'retention' }, `retention: ${e.message}`)),
          parseDuration(values['retention-every']),
        ),
      );
    }
    scheduler.start();
    const stopPolicy = await startBacklogPolicy(values, ops, log);
    // Handlers of the control channel beyond the built-in resend-request answer (receipts, O9: one line each).
    const controlHandlers: ControlHandlers = {
      receipts: storeReceipts(new PostgresReceiptStore(ops.db, { schema: ops.schema })),
    };
    const controlTopic = values.control ?? CONTROL_TOPIC;
    const startControl = async () => {
      await ops.admin?.ensureTopic(controlTopic, 3).catch(() => undefined);
      return startProducerControl({
        subscriber: ops.subscriber(),
        publisher: ops.publisher(),
        sequences: ops.sequences,
        outbox: ops.store,
        sources: await ops.sources(),
        groupId: `zeroloss-serve.${ops.schema}`,
        topic: controlTopic,
        handlers: controlHandlers,
        marksEveryMs: off(values['marks-every']) ? 0 : parseDuration(values['marks-every'] ?? '10s'),
        registry: metrics.registry,
        metrics,
        onError: (e, task) => log.warn({ err: e, task }, `${task}: ${e.message}`),
        onResend: (r, result) =>
          log.info(
            { group: r.group, producer: r.producerId, key: r.key, from: r.fromSeq, to: r.toSeq, resent: result.resent.length },
            `resend request of ${r.group}: ${result.resent.length} resent`,
          ),
      });
    };
    // In the background: joining the channel's group must not hold up the probes. Without the control channel
    // serve still does everything else: a broker that refuses the topic is logged.
    const control = off(values.control)
      ? undefined
      : startControl().catch((e: Error) => {
          log.error({ err: e, task: 'control' }, `control channel not started: ${e.message}`);
          return undefined;
        });
    const broker = ops.broker;
    const server = await startHealthServer({
      ...(httpEndpoint(values, 9465) as { host: string; port: number }),
      registry: metrics.registry,
      checks: {
        database: databaseCheck(ops.db),
        // A metadata request: cheap for the broker, and what every collection needs first.
        ...(broker
          ? {
              broker: async () => {
                await broker.listTopics();
                return { ok: true };
              },
            }
          : {}),
      },
    });
    log.info(
      { http: `${server.host}:${server.port}`, schema: ops.schema },
      `probes and metrics on ${server.host}:${server.port} (/healthz, /readyz, /metrics), schema ${ops.schema}`,
    );
    // Loaded only when asked for: its HTTP framework and chart files cost nothing otherwise.
    const board = dashboard
      ? await (await import('../../dashboard/start-dashboard.ts')).startDashboard(
          {
            schema: ops.schema,
            store: ops.store,
            deadLetters: ops.deadLetters,
            broker: ops.broker,
            brokerNotRead: ops.brokerNotRead,
            publisher: () => ops.publisher(),
            checks: { database: databaseCheck(ops.db) },
            registry: metrics.registry,
            source: pgUrl(values.pg),
          },
          {
            host: dashboard.host,
            port: dashboard.port,
            token: dashboard.token,
            redactFields: values.redact,
            groups: values.group,
            log: (line) => log.error({}, line),
          },
        )
      : undefined;
    if (board) {
      log.info(
        { url: `${board.url}/`, token: dashboard?.token !== undefined },
        `dashboard on ${board.url}/${dashboard?.token ? ' (token required)' : ''}`,
      );
    }
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    for (const t of timers) clearInterval(t);
    stopPolicy?.();
    await (await control)?.close();
    await scheduler.stop();
    await board?.close();
    await server.close();
    return 0;
  });
}

/** The dashboard flags, checked before anything connects; undefined without --dashboard. */
function dashboardSettings(values: {
  dashboard?: boolean;
  'dashboard-port'?: string;
  host?: string;
  'token-file'?: string;
  redact?: string[];
}): { host: string; port: number; token: string | undefined } | undefined {
  if (!values.dashboard) {
    const stray = (['dashboard-port', 'host', 'token-file', 'redact'] as const).find((k) => values[k] !== undefined);
    if (stray) throw new ZerolossError('ZL_INVALID_CONFIG', `--${stray} goes with --dashboard`);
    return undefined;
  }
  let token = process.env.ZEROLOSS_DASHBOARD_TOKEN || undefined;
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (error) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `cannot read --token-file: ${(error as Error).message}`);
    }
  }
  return { host: values.host ?? '127.0.0.1', port: intOption(values['dashboard-port'], 'dashboard-port', 9466), token };
}
