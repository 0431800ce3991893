import { postgres } from '../../adapters/postgres/postgres.ts';
import { connectionOptions, parse, pgUrl, print } from '../args.ts';

export const migrateHelp = `Usage: zeroloss migrate --pg <url> [--schema <name>] [--json]

Creates or updates zeroloss's tables (outbox, inbox, dead letters, table log) in the given schema.
Idempotent: versioned migrations run once each, under an advisory lock.

  --pg <url>        Postgres connection string (or ZEROLOSS_PG_URL)
  --schema <name>   schema for zeroloss's tables (default: zeroloss)
  --json            print the result as JSON`;

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, connectionOptions);
  if (values.help) {
    console.log(migrateHelp);
    return 0;
  }
  const store = postgres(pgUrl(values.pg), { schema: values.schema, max: 1 });
  try {
    const result = await store.migrate();
    print(values.json, result, () =>
      result.applied.length === 0
        ? `schema ${result.schema} is up to date (version ${result.current})`
        : `schema ${result.schema}: applied ${result.applied.join(', ')} (now at version ${result.current})`,
    );
    return 0;
  } finally {
    await store.close();
  }
}
