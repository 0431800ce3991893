import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CommitHorizon } from '../../../src/operations/commit-horizon.ts';
import { SequenceCursor } from '../../../src/operations/sequence-cursor.ts';

const at = (s: number) => new Date(1_700_000_000_000 + s * 1000);

/**
 * A table as the cursor's reads see it: the committed ids. `read` answers as the store's statements do (the
 * first `limit` ids above `after`, and those of `gapIds` that exist), and records what was asked.
 */
function table(committed: number[]) {
  const ids = new Set(committed.map(BigInt));
  const asked: Array<{ after: string; gapIds: string[] }> = [];
  return {
    ids,
    asked,
    read:
      (limit: number) =>
      async (after: string, gapIds: string[]): Promise<Array<{ id: string }>> => {
        asked.push({ after, gapIds });
        const above = [...ids]
          .filter((id) => id > BigInt(after))
          .sort((a, b) => (a < b ? -1 : 1))
          .slice(0, limit);
        const found = gapIds.map(BigInt).filter((id) => ids.has(id));
        return [...above, ...found].map((id) => ({ id: id.toString() }));
      },
  };
}

describe('SequenceCursor', () => {
  test('each row is taken once, whatever order the ids commit in; a gap is looked up until it fills or settles', async () => {
    const t = table([11, 13, 14, 20]);
    const c = new SequenceCursor('10');
    const taken: string[] = [];
    const take = (rows: Array<{ id: string }>) => taken.push(...rows.map((r) => r.id));

    await c.round(t.read(100), take, at(1), undefined, 100);
    assert.deepEqual(taken, ['11', '13', '14', '20']);
    assert.deepEqual(c.gaps, [
      ['12', '12'],
      ['15', '19'],
    ]);
    // 17 and 12 commit late, 25 is new.
    for (const id of [17n, 12n, 25n]) t.ids.add(id);
    await c.round(t.read(100), take, at(2), undefined, 100);
    assert.deepEqual(taken.slice(4).sort(), ['12', '17', '25']);
    assert.deepEqual(t.asked.at(-1), { after: '20', gapIds: ['12', '15', '16', '17', '18', '19'] });
    assert.deepEqual(c.gaps, [
      ['15', '16'],
      ['18', '19'],
      ['21', '24'],
    ]);
    // Quiet since before round 1 found its gaps: nothing settles. Since after it: round 1's gaps settle, not round 2's.
    await c.round(t.read(100), take, at(3), at(1), 100);
    assert.equal(c.gaps.length, 3);
    await c.round(t.read(100), take, at(4), at(1.5), 100);
    assert.deepEqual(c.gaps, [['21', '24']]);
    await c.round(t.read(100), take, at(5), at(4.5), 100);
    assert.deepEqual(c.gaps, []);
    assert.equal(taken.length, 7, 'nothing taken twice');
    assert.deepEqual(t.asked.at(-1), { after: '25', gapIds: ['21', '22', '23', '24'] });
  });

  test('pages: the part above the cursor and the gap ids, each at most `limit` a read, until all is read', async () => {
    const t = table([1, 2, 3, 4, 9]);
    const c = new SequenceCursor('0');
    const taken: string[] = [];
    await c.round(t.read(3), (rows) => taken.push(...rows.map((r) => r.id)), at(1), undefined, 3);
    assert.deepEqual(taken, ['1', '2', '3', '4', '9']);
    assert.deepEqual(c.gaps, [['5', '8']]);
    // The four gap ids are looked up three, then one, at a time; all of them each round.
    t.asked.length = 0;
    await c.round(t.read(3), () => {}, at(2), undefined, 3);
    assert.deepEqual(
      t.asked.map((a) => a.gapIds),
      [['5', '6', '7'], ['8']],
    );
    assert.deepEqual(c.gaps, [
      ['5', '7'],
      ['8', '8'],
    ]);
  });

  test('a round that fails part way settles nothing it did not look up', async () => {
    const t = table([1, 5]);
    const c = new SequenceCursor('0');
    await c.round(t.read(1), () => {}, at(1), undefined, 1);
    assert.deepEqual(c.gaps, [['2', '4']]);
    const failing = async () => {
      throw new Error('connection lost');
    };
    await assert.rejects(c.round(failing, () => {}, at(2), at(1.5), 1));
    assert.deepEqual(c.gaps, [
      ['2', '2'],
      ['3', '4'],
    ]);
    // The next round looks them all up before it drops them.
    await c.round(t.read(1), () => {}, at(3), at(2.5), 1);
    assert.deepEqual(c.gaps, []);
  });

  test('past 100,000 unfilled ids the lowest are given up', async () => {
    const t = table([150_001]);
    const c = new SequenceCursor('0');
    await c.round(t.read(10), () => {}, at(1), undefined, 10);
    assert.deepEqual(c.gaps, [['50001', '150000']]);
  });

  test('ids past 2^53 stay exact', async () => {
    const t = table([]);
    t.ids.add(9007199254740996n);
    const c = new SequenceCursor('9007199254740993');
    await c.round(t.read(10), () => {}, at(1), undefined, 10);
    assert.deepEqual(c.gaps, [['9007199254740994', '9007199254740995']]);
  });
});

describe('CommitHorizon', () => {
  test('an observation becomes quiet once none of its writers is listed any more', () => {
    const h = new CommitHorizon();
    assert.equal(h.observe(at(1), ['a', 'b']), undefined);
    assert.equal(h.observe(at(2), ['b', 'c']), undefined, 'b still writes');
    assert.equal(h.observe(at(3), ['c'])?.toISOString(), at(1).toISOString(), 'a and b ended: quiet at 1, c of 2 still writes');
    assert.equal(h.observe(at(4), ['d'])?.toISOString(), at(3).toISOString());
    assert.equal(h.observe(at(5), [])?.toISOString(), at(5).toISOString(), 'nobody writes: quiet now');
    assert.equal(h.observe(at(6), ['e'])?.toISOString(), at(5).toISOString(), 'quiet never moves back');
  });
});
