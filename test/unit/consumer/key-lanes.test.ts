import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FifoSemaphore, KeyLanes } from '../../../src/consumer/key-lanes.ts';

function deferred() {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('KeyLanes', () => {
  test('runs one lane serially in push order and lanes concurrently up to the limit', async () => {
    const lanes = new KeyLanes(3);
    const log: string[] = [];
    let running = 0;
    let peak = 0;
    for (let i = 0; i < 5; i++) {
      for (const lane of ['a', 'b', 'c', 'd', 'e']) {
        lanes.push(lane, async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setImmediate(r));
          log.push(`${lane}${i}`);
          running--;
        });
      }
    }
    await lanes.idle();
    assert.equal(peak, 3);
    for (const lane of ['a', 'b', 'c', 'd', 'e']) {
      assert.deepEqual(
        log.filter((l) => l[0] === lane),
        [0, 1, 2, 3, 4].map((i) => `${lane}${i}`),
      );
    }
  });

  test('a sleeping task gives its slot to other lanes and keeps its own lane blocked', async () => {
    const lanes = new KeyLanes(1);
    const log: string[] = [];
    const release = deferred();
    lanes.push('slow', async (control) => {
      log.push('slow:start');
      const sleeping = control.sleep(10_000, AbortSignal.any([abortOn(release.promise)]));
      await sleeping;
      log.push('slow:end');
    });
    lanes.push('slow', async () => {
      log.push('slow:second');
    });
    lanes.push('fast', async () => {
      log.push('fast');
      release.resolve();
    });
    await lanes.idle();
    assert.deepEqual(log, ['slow:start', 'fast', 'slow:end', 'slow:second']);
  });

  test('exclusive waits until no other task holds a slot, and blocks new ones meanwhile', async () => {
    const lanes = new KeyLanes(4);
    const log: string[] = [];
    const other = deferred();
    lanes.push('other', async () => {
      log.push('other:start');
      await other.promise;
      log.push('other:end');
    });
    lanes.push('suspect', async (control) => {
      await control.exclusive(async () => {
        log.push('suspect:alone');
      });
    });
    // Queued after the exclusive request: must not start before it ran.
    await new Promise((r) => setImmediate(r));
    lanes.push('late', async () => {
      log.push('late');
    });
    await new Promise((r) => setImmediate(r));
    other.resolve();
    await lanes.idle();
    assert.deepEqual(log, ['other:start', 'other:end', 'suspect:alone', 'late']);
  });

  test('two tasks asking for exclusivity at once both get it, one after the other', async () => {
    const lanes = new KeyLanes(2);
    let inside = 0;
    let overlap = false;
    const run = async () => {
      inside++;
      if (inside > 1) overlap = true;
      await new Promise((r) => setTimeout(r, 5));
      inside--;
    };
    lanes.push('a', (control) => control.exclusive(run));
    lanes.push('b', (control) => control.exclusive(run));
    await lanes.idle();
    assert.equal(overlap, false);
  });

  test('an exclusive task that sleeps keeps its slots, so a second exclusive request cannot deadlock it', async () => {
    // A suspect record retrying inside its exclusive run, while another suspect waits for exclusivity:
    // had the sleeper handed a slot back, it would queue behind the waiting request, which needs that slot.
    const lanes = new KeyLanes(2);
    const events: string[] = [];
    lanes.push('a', (control) =>
      control.exclusive(async () => {
        events.push('a in');
        assert.equal(await control.sleep(20), true);
        events.push('a out');
      }),
    );
    lanes.push('b', (control) =>
      control.exclusive(async () => {
        events.push('b');
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('deadlocked'), 2_000);
    });
    assert.equal(await Promise.race([lanes.idle().then(() => 'idle'), stuck]), 'idle');
    clearTimeout(timer);
    assert.deepEqual(events, ['a in', 'a out', 'b']);
  });

  test("an exclusive run first waits for its lane's earlier task, so a predecessor back from a sleep is never starved of a slot", async () => {
    // Seen as a stalled consumer in the fault suite's mixed scenario: a poison suspect (exclusive) behind
    // a message of its key that was waiting out a database outage (a sleep, slot given back). Taking every
    // slot first and then waiting for that message to move, the suspect held the very slot it needed.
    const lanes = new KeyLanes(2, () => {}, { depth: 2 });
    const events: string[] = [];
    const sleeping = deferred();
    lanes.push('k', async (control) => {
      control.ticket.set('active');
      sleeping.resolve();
      assert.equal(await control.sleep(20), true);
      events.push('first done');
    });
    lanes.push('k', async (control) => {
      await sleeping.promise;
      control.ticket.set('waiting');
      await control.exclusive(async () => {
        const previous = control.ticket.previous;
        if (previous) await control.wait(previous.changed());
        events.push('suspect ran');
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('deadlocked'), 2_000);
    });
    assert.equal(await Promise.race([lanes.idle().then(() => 'idle'), stuck]), 'idle');
    clearTimeout(timer);
    assert.deepEqual(events, ['first done', 'suspect ran']);
  });

  test('a throwing task is reported and its lane goes on', async () => {
    const errors: unknown[] = [];
    const lanes = new KeyLanes(2, (e) => errors.push(e));
    const log: string[] = [];
    lanes.push('a', async () => {
      throw new Error('boom');
    });
    lanes.push('a', async () => {
      log.push('after');
    });
    await lanes.idle();
    assert.equal(errors.length, 1);
    assert.deepEqual(log, ['after']);
  });
});

describe('FifoSemaphore', () => {
  test('serves waiters in arrival order, a big request included', async () => {
    const s = new FifoSemaphore(2);
    const order: string[] = [];
    await s.acquire(1);
    await s.acquire(1);
    const all = s.acquire(2).then(() => order.push('all'));
    const one = s.acquire(1).then(() => order.push('one'));
    s.release(1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], 'the single permit waits behind the request for two');
    s.release(1);
    await all;
    s.release(2);
    await one;
    assert.deepEqual(order, ['all', 'one']);
  });
});

function abortOn(promise: Promise<void>): AbortSignal {
  const controller = new AbortController();
  void promise.then(() => controller.abort());
  return controller.signal;
}
