import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPostgresError } from '../../../src/adapters/postgres/postgres-errors.ts';
import { ZerolossError } from '../../../src/core/errors.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

test('the server being away is ZL_STORE_UNAVAILABLE, retryable, with the driver error as cause', () => {
  const unavailable = [
    withCode('terminating connection due to administrator command', '57P01'),
    withCode('the database system is starting up', '57P03'),
    withCode('sorry, too many clients already', '53300'),
    withCode('connection failure', '08006'),
    withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
    withCode('read ECONNRESET', 'ECONNRESET'),
    new Error('Connection terminated unexpectedly'),
    new Error('timeout exceeded when trying to connect'),
    new Error('Client has encountered a connection error and is not queryable'),
    new Error('Connection closed'),
    // node-postgres connecting to "localhost" tries ::1 and 127.0.0.1 and rejects with both.
    new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''),
    new Error('wrapped', { cause: withCode('terminating connection', '57P01') }),
  ];
  for (const raw of unavailable) {
    const error = classifyPostgresError(raw);
    assert.ok(error instanceof ZerolossError, raw.message);
    assert.equal(error.code, 'ZL_STORE_UNAVAILABLE', raw.message);
    assert.equal(error.retryable, true);
    assert.equal(error.cause, raw);
  }
});

test('conflicts with concurrent transactions are ZL_STORE_CONFLICT; a statement in an aborted transaction is ZL_TRANSACTION_ROLLED_BACK', () => {
  for (const sqlstate of ['40001', '40P01', '55P03']) {
    const raw = withCode('could not serialize access', sqlstate);
    const error = classifyPostgresError(raw) as ZerolossError;
    assert.equal(error.code, 'ZL_STORE_CONFLICT', sqlstate);
    assert.equal(error.retryable, true);
    assert.equal(error.cause, raw);
    assert.deepEqual(error.details, { sqlstate });
  }
  const aborted = classifyPostgresError(withCode('current transaction is aborted', '25P02')) as ZerolossError;
  assert.equal(aborted.code, 'ZL_TRANSACTION_ROLLED_BACK');
  assert.equal(aborted.retryable, true);
});

test('anything else is returned as it is: a constraint violation keeps its SQLSTATE, our own errors stay ours', () => {
  const unique = withCode('duplicate key value violates unique constraint', '23505');
  assert.equal(classifyPostgresError(unique), unique);
  const ours = new ZerolossError('ZL_INVALID_MESSAGE', 'bad');
  assert.equal(classifyPostgresError(ours), ours);
  const unavailable = new ZerolossError('ZL_STORE_UNAVAILABLE', 'away', { retryable: true });
  assert.equal(classifyPostgresError(unavailable), unavailable, 'not wrapped twice');
  assert.equal(classifyPostgresError('a string'), 'a string');
  assert.equal(classifyPostgresError(null), null);
});

test('a refused login (28P01, 28000) is ZL_STORE_AUTH, not retryable, and the message names no password', () => {
  for (const sqlstate of ['28P01', '28000']) {
    const driverError = Object.assign(new Error('password authentication failed for user "app"'), { code: sqlstate });
    const classified = classifyPostgresError(driverError) as ZerolossError;
    assert.equal(classified.code, 'ZL_STORE_AUTH');
    assert.equal(classified.retryable, false);
    assert.equal(classified.cause, driverError);
  }
});
