import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { configProblems } from '../core/config.ts';
import { ZerolossError } from '../core/errors.ts';

/**
 * The settings file every command reads with `--config-file <f.json>`: a `kafka` section (brokers, TLS,
 * SASL) and a `sources` section (business tables that carry their own send-state column). Validated once
 * here; unknown keys are refused, and every problem is a ZL_INVALID_CONFIG naming the field
 * (`sources[0].stateColumn`), never echoing the file's text, which may hold secrets.
 */

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL name matching ^[a-z_][a-z0-9_]{0,62}$');

const kafkaSchema = z
  .object({
    brokers: z.union([z.string(), z.array(z.string())]).optional(),
    tls: z
      .union([
        z.boolean(),
        z
          .object({
            ca: z.string().optional(),
            cert: z.string().optional(),
            key: z.string().optional(),
            servername: z.string().optional(),
            rejectUnauthorized: z.boolean().optional(),
          })
          .strict(),
      ])
      .optional(),
    sasl: z
      .object({
        mechanism: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
        passwordFile: z.string().optional(),
        token: z.string().optional(),
        tokenFile: z.string().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

// `{column}` in a type is the row's value of that column, e.g. "lottery.award.{award_type}".
const TEMPLATE_COLUMN = /\{([^}]*)\}/g;

const sourceSchema = z
  .object({
    /** Stable name: part of the bookkeeping keys and of default message ids. Never rename a live source. */
    name: z.string().regex(/^[a-z0-9_.:-]{1,100}$/, 'must be 1-100 of [a-z0-9_.:-]'),
    table: identifier,
    tableSchema: identifier.optional(),
    idColumn: identifier,
    keyColumn: identifier,
    stateColumn: identifier,
    createdColumn: identifier.optional(),
    modifiedColumn: identifier,
    topic: z.string().min(1).max(249),
    /** Message type; `{column}` is replaced by that column's value. Not with `module` (the function gives it). */
    type: z
      .string()
      .min(1)
      .refine((t) => [...t.matchAll(TEMPLATE_COLUMN)].every((m) => /^[a-z_][a-z0-9_]{0,62}$/.test(m[1] ?? '')), {
        message: 'a {column} placeholder must name a column',
      })
      .optional(),
    /** Columns copied into the JSON payload: a list (field = column name) or { field: column }. */
    payload: z.union([z.array(identifier).min(1), z.record(z.string().min(1), identifier)]).optional(),
    /** Path (relative to the settings file) of a module exporting `toMessage(row)` (or a default function). */
    module: z.string().min(1).optional(),
    producerId: z.string().min(1).max(200).optional(),
    parkedState: z.union([z.number().int(), z.null()]).optional(),
    holdKeyOnParked: z.boolean().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.payload === undefined) === (s.module === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['payload'], message: 'give exactly one of "payload" (a column mapping) or "module"' });
    }
    if (s.payload !== undefined && s.type === undefined) {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'a declarative payload needs a message "type"' });
    }
    if (s.module !== undefined && s.type !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'with "module" the mapping function gives the type' });
    }
  });

const settingsSchema = z
  .object({
    kafka: kafkaSchema.optional(),
    sources: z
      .array(sourceSchema)
      .superRefine((sources, ctx) => {
        const seen = new Set<string>();
        sources.forEach((s, i) => {
          if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate source name ${s.name}` });
          seen.add(s.name);
        });
      })
      .optional(),
  })
  .strict();

export type FileKafka = z.output<typeof kafkaSchema>;
export type SourceDeclaration = z.output<typeof sourceSchema>;

export interface Settings {
  kafka: FileKafka;
  sources: readonly SourceDeclaration[];
  /** The settings file's folder: relative paths in it are resolved against this. */
  dir: string;
}

const cache = new Map<string, Settings>();

/** Reads and validates the settings file once per process; no file gives empty settings. */
export function readSettingsFile(file: string | undefined): Settings {
  if (!file) return { kafka: {}, sources: [], dir: process.cwd() };
  const known = cache.get(file);
  if (known) return known;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof SyntaxError ? 'not valid JSON' : 'unreadable');
    throw new ZerolossError('ZL_INVALID_CONFIG', `--config-file ${file}: ${reason}`, { details: { field: 'config-file' } });
  }
  const result = settingsSchema.safeParse(parsed);
  if (!result.success) {
    // Every problem at once, each naming its field; a problem of the whole file names the flag.
    const problems = configProblems(result.error.issues).map((p) => (p.field === '(root)' ? { ...p, field: 'config-file' } : p));
    throw new ZerolossError('ZL_INVALID_CONFIG', `--config-file ${file}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, {
      details: { field: problems[0]?.field ?? 'config-file', problems },
    });
  }
  const settings: Settings = Object.freeze({
    kafka: result.data.kafka ?? {},
    sources: Object.freeze(result.data.sources ?? []),
    dir: path.dirname(path.resolve(file)),
  });
  cache.set(file, settings);
  return settings;
}
