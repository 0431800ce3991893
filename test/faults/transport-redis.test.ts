import { test } from 'node:test';
import { runTransportFaults } from './transport-faults.ts';

/**
 * Issue 15's fault test on Redis Streams, short enough for `npm test`: 1,000 messages over 100 keys while
 * the relay and the consumers are SIGKILLed twice each and the run's own Redis (appendonly yes, appendfsync
 * always) is SIGKILLed and started again on its files; 0 lost, 0 applied twice, per-key order, duplicates counted.
 * The 10,000-message version is `npm run faults -- --transport redis` (docs/reliability.md).
 */
test(
  'Redis Streams: relay and consumer SIGKILLs and a broker crash restart lose nothing, apply nothing twice, keep key order',
  { timeout: 120_000 },
  () => runTransportFaults('redis'),
);
