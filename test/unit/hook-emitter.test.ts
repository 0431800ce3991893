import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ZerolossError } from '../../src/core/errors.ts';
import { HookEmitter } from '../../src/core/hook-emitter.ts';

type Events = { tick: [number]; error: [Error] };

test('a throwing listener becomes a ZL_LISTENER_FAILED error; the other listeners run; emit() does not throw', () => {
  const emitter = new HookEmitter<Events>();
  const seen: number[] = [];
  const errors: Error[] = [];
  emitter.on('error', (e) => errors.push(e));
  emitter.on('tick', () => {
    throw new Error('broken hook');
  });
  emitter.on('tick', (n) => seen.push(n));
  assert.equal(emitter.emit('tick', 1), true);
  assert.deepEqual(seen, [1]);
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as ZerolossError).code, 'ZL_LISTENER_FAILED');
  assert.match(errors[0]?.message ?? '', /'tick' event threw: .*broken hook/);
});

test('once() listeners fire once; no listener: false; an error listener that throws, or none, is dropped', () => {
  const emitter = new HookEmitter<Events>();
  let once = 0;
  emitter.once('tick', () => once++);
  emitter.emit('tick', 1);
  emitter.emit('tick', 2);
  assert.equal(once, 1);
  assert.equal(emitter.emit('tick', 3), false);
  assert.equal(emitter.emit('error', new Error('nobody listens')), false);
  emitter.on('error', () => {
    throw new Error('the error hook broke too');
  });
  emitter.on('tick', () => {
    throw new Error('broken hook');
  });
  assert.doesNotThrow(() => emitter.emit('tick', 4));
});
