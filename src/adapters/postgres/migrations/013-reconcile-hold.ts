import type { Migration } from '../migrations.ts';

/**
 * Escalation (O8): a reconciliation run that found more missing messages than the automatic repair limit
 * is held for a person. The run row keeps every selected id (the report lists only the first ones), and
 * the approval that re-publishes them: who, when, why, and the outcome. `status` is null for runs that
 * held nothing; an approval moves 'held' to 'approved' once, so a second approval finds nothing to take.
 */
export const reconcileHoldMigration: Migration = {
  version: 13,
  name: 'reconcile-hold',
  sql: (s) => `
    alter table ${s}.reconcile_run add column if not exists status text check (status in ('held', 'approved'));
    alter table ${s}.reconcile_run add column if not exists held_ids text[];
    alter table ${s}.reconcile_run add column if not exists approved_at timestamptz;
    alter table ${s}.reconcile_run add column if not exists approved_by text;
    alter table ${s}.reconcile_run add column if not exists approval jsonb;
    create index if not exists reconcile_run_held on ${s}.reconcile_run (id) where status = 'held';
  `,
};
