import { test } from 'node:test';
import { runTransportFaults } from './transport-faults.ts';

/**
 * Issue 15's fault test on RabbitMQ, short enough for `npm test`: 1,000 messages over 100 keys while the
 * relay and the consumers are SIGKILLed twice each and the run's own RabbitMQ node (never the shared one)
 * has its Erlang VM SIGKILLed and is started again on its data; 0 lost, 0 applied twice, per-key order,
 * duplicates counted. The 10,000-message version (clean stop_app/start_app and a crash restart) is
 * `npm run faults -- --transport rabbitmq` (docs/reliability.md).
 */
test(
  'RabbitMQ: relay and consumer SIGKILLs and a broker crash restart lose nothing, apply nothing twice, keep key order',
  { timeout: 120_000 },
  () => runTransportFaults('rabbitmq'),
);
