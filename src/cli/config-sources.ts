import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StateColumnSource } from '../adapters/postgres/state-column-source.ts';
import type { PostgresStore } from '../adapters/postgres/postgres-store.ts';
import { ZerolossError } from '../core/errors.ts';
import type { MessageInput } from '../core/message.ts';
import { readSettingsFile, type SourceDeclaration } from './settings-file.ts';

type Row = Record<string, unknown>;
type Mapping = (row: Row) => Partial<MessageInput> & { type: string; payload: unknown; id?: string };

/**
 * The state-column sources declared in the settings file, built on `store`. Each is verified (its table and
 * every column it names exist) before it is returned, so a typo stops the command at start with the source
 * and column named, rather than parking every row later.
 */
export async function configuredSources(
  store: Pick<PostgresStore, 'stateColumnSource'>,
  configFile: string | undefined,
): Promise<StateColumnSource<Row>[]> {
  const { sources, dir } = readSettingsFile(configFile);
  const built: StateColumnSource<Row>[] = [];
  for (const [i, declared] of sources.entries()) {
    const toMessage = declared.module !== undefined ? await loadMapping(declared, i, dir) : declarativeMapping(declared);
    const source = store.stateColumnSource<Row>({
      name: declared.name,
      table: declared.table,
      tableSchema: declared.tableSchema,
      idColumn: declared.idColumn,
      keyColumn: declared.keyColumn,
      stateColumn: declared.stateColumn,
      createdColumn: declared.createdColumn,
      modifiedColumn: declared.modifiedColumn,
      columns: mappedColumns(declared),
      producerId: declared.producerId,
      parkedState: declared.parkedState,
      holdKeyOnParked: declared.holdKeyOnParked,
      // The declaration's topic and key column are defaults a mapping module may override per row.
      toMessage: (row) => ({ topic: declared.topic, key: String(row[declared.keyColumn]), ...toMessage(row) }),
    });
    await source.verify();
    built.push(source);
  }
  return built;
}

function mappedColumns(s: SourceDeclaration): string[] {
  const fromType = [...(s.type ?? '').matchAll(/\{([^}]*)\}/g)].map((m) => m[1] ?? '');
  const fromPayload = s.payload === undefined ? [] : Array.isArray(s.payload) ? s.payload : Object.values(s.payload);
  return [...new Set([...fromType, ...fromPayload])];
}

/** `payload: ["order_id"]` or `{ "orderId": "order_id" }` and `type: "award.{award_type}"`. */
function declarativeMapping(s: SourceDeclaration): Mapping {
  const fields: Array<[string, string]> =
    s.payload === undefined ? [] : Array.isArray(s.payload) ? s.payload.map((c) => [c, c]) : Object.entries(s.payload);
  const type = s.type ?? '';
  return (row) => ({
    type: type.replace(/\{([^}]*)\}/g, (_, column: string) => String(row[column] ?? '')),
    payload: Object.fromEntries(fields.map(([field, column]) => [field, row[column] ?? null])),
  });
}

async function loadMapping(s: SourceDeclaration, i: number, dir: string): Promise<Mapping> {
  const file = path.resolve(dir, s.module ?? '');
  const field = `sources[${i}].module`;
  let loaded: { toMessage?: unknown; default?: unknown };
  try {
    loaded = (await import(pathToFileURL(file).href)) as typeof loaded;
  } catch (error) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `${field}: cannot load ${file}: ${(error as Error).message}`, {
      details: { field },
      cause: error,
    });
  }
  const fn = loaded.toMessage ?? loaded.default;
  if (typeof fn !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', `${field}: ${file} exports no toMessage(row) function (named or default)`, {
      details: { field },
    });
  }
  return fn as Mapping;
}
