import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MultipleErrors, NetworkError, ResponseError, UserError } from '@platformatic/kafka';
import { kafkaSendError } from '../../src/adapters/kafka/kafka-errors.ts';
import { isClientRefused } from '../../src/core/errors.ts';

// 0 = Produce, 3 = Metadata in the client's API table; only the nested ProtocolErrors matter here.
const produceError = (code: number) => new ResponseError(0, 9, { '/responses/0/partitionResponses/0': [code, null] }, {});

test('a missing topic, as the client reports it from metadata, is ZL_TOPIC_UNAVAILABLE for that topic only', () => {
  const error = new MultipleErrors('send failed', [new UserError('Unknown topic orders-typo.')]);
  const failure = kafkaSendError(error, 'orders-typo');
  assert.equal(failure.code, 'ZL_TOPIC_UNAVAILABLE');
  assert.equal(failure.retryable, true);
  assert.deepEqual(failure.details, { topic: 'orders-typo', reason: 'missing' });
  assert.match(failure.message, /npx zeroloss topics ensure orders-typo --partitions <n> --kafka <brokers>/);
  assert.notEqual(kafkaSendError(error, 'orders').code, 'ZL_TOPIC_UNAVAILABLE', 'another topic is not blamed');
  assert.notEqual(kafkaSendError(error).code, 'ZL_TOPIC_UNAVAILABLE', 'without a single topic nobody is blamed');
});

test('topic authorization is ZL_TOPIC_UNAVAILABLE (waits), not a permanent rejection that parks', () => {
  const failure = kafkaSendError(produceError(29), 'payments');
  assert.equal(failure.code, 'ZL_TOPIC_UNAVAILABLE');
  assert.deepEqual(failure.details, { topic: 'payments', reason: 'unauthorized' });
  assert.equal(kafkaSendError(produceError(29)).code, 'ZL_SEND_FAILED', 'a mixed send is split before anyone is blamed');
});

test('record-level rejections stay permanent; leader moves stay retryable; an unreachable cluster is an outage', () => {
  assert.equal(kafkaSendError(produceError(10), 't').code, 'ZL_SEND_REJECTED'); // MESSAGE_TOO_LARGE
  const leader = kafkaSendError(produceError(6), 't'); // NOT_LEADER_OR_FOLLOWER
  assert.equal(leader.code, 'ZL_SEND_FAILED');
  assert.equal(leader.retryable, true);
  const down = new MultipleErrors('failed', [new NetworkError('Connection refused', { code: 'ECONNREFUSED' })]);
  assert.equal(kafkaSendError(down, 't').code, 'ZL_TRANSPORT_UNAVAILABLE');
});

test('a cluster permission refused (CLUSTER_AUTHORIZATION_FAILED, e.g. InitProducerId) is a client refusal that waits, not a record rejection that parks', () => {
  // 22 = InitProducerId; 31 = CLUSTER_AUTHORIZATION_FAILED. Taken for the records' own fault, every row was
  // isolated, failed alone and parked.
  const refused = kafkaSendError(new ResponseError(22, 4, { '/errorCode': [31, null] }, {}), 't');
  assert.equal(refused.code, 'ZL_KAFKA_AUTH');
  assert.match(refused.message, /IdempotentWrite/);
  assert.equal(isClientRefused(refused), true);
});
