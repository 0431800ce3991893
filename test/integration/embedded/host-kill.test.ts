import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { pglite } from '../../../src/entry/pglite.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const WRITER = path.join(import.meta.dirname, 'host-writer.ts');
const LIVES = 3;

/**
 * Issue 19: the embedded default's host process SIGKILLed mid-write and reopened (PGlite durability). Each
 * life opens the same data directory, commits order + message transactions in a loop and is killed without
 * warning after a varying number of them. Reopened, the directory must hold every transaction whose commit
 * returned, each whole (the order row and its outbox row together, never one without the other), with each
 * producer's per-key sequence gap-free, and it must take writes again.
 */
const dir = mkdtempSync(path.join(tmpdir(), 'zl-host-kill-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a host process killed mid-write loses no committed transaction and tears none; the directory reopens', async () => {
  const committed: string[] = [];
  for (let life = 1; life <= LIVES; life++) {
    const child: ChildProcess = spawn(process.execPath, [WRITER], {
      env: { ...process.env, ZL_DIR: dir, ZL_LIFE: String(life) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let ready = false;
    let mine = 0;
    child.on('message', (m: { kind: string; id?: string }) => {
      if (m.kind === 'ready') ready = true;
      if (m.kind === 'committed' && m.id) {
        committed.push(m.id);
        mine++;
      }
    });
    const exited = once(child, 'exit');
    await waitFor(() => ready || child.exitCode !== null, { what: `life ${life} to open the directory`, timeoutMs: 60_000 });
    assert.ok(ready, `life ${life} could not open the directory after the previous kill`);
    // Killed at a different point of its write loop each life.
    await waitFor(() => mine >= 20 + life * 7, { what: `life ${life} committing`, timeoutMs: 60_000 });
    child.kill('SIGKILL');
    await exited;
  }

  const store = pglite(dir);
  try {
    await store.migrate();
    const orders = new Set((await store.db.query<{ id: string }>('select id from public.orders')).rows.map((r) => r.id));
    const messages = (
      await store.db.query<{ id: string; producer_id: string; msg_key: string; key_seq: string }>(
        `select convert_from(payload, 'UTF8')::jsonb ->> 'id' as id, producer_id, msg_key, key_seq::text from zeroloss.outbox order by seq_id`,
      )
    ).rows;
    const lost = committed.filter((id) => !orders.has(id));
    assert.deepEqual(lost, [], 'every transaction whose commit returned is there');
    const withMessage = new Set(messages.map((m) => m.id));
    assert.deepEqual(
      [...orders].filter((id) => !withMessage.has(id)),
      [],
      'no order without its message',
    );
    assert.deepEqual(
      [...withMessage].filter((id) => !orders.has(id)),
      [],
      'no message without its order',
    );
    assert.equal(messages.length, withMessage.size, 'each message once');
    const seqs = new Map<string, number[]>();
    for (const m of messages) {
      const k = `${m.producer_id}/${m.msg_key}`;
      seqs.set(k, [...(seqs.get(k) ?? []), Number(m.key_seq)]);
    }
    for (const [k, s] of seqs)
      assert.deepEqual(
        s,
        s.map((_, i) => i + 1),
        `${k}: gap-free sequence`,
      );
    // And it takes writes again.
    await store.transaction((tx) => tx.query(`insert into public.orders (id, life) values ('after', 0)`));
    assert.equal((await store.db.query('select 1 from public.orders where id = $1', ['after'])).rows.length, 1);
    assert.ok(committed.length >= LIVES * 20, `${committed.length} commits acknowledged over ${LIVES} lives`);
  } finally {
    await store.close();
  }
});
