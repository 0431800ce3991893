/**
 * The ```ts blocks of a Markdown file, for the tests that run the README as written (test/readme, test/package).
 *
 * A block may carry one HTML comment directly above its fence (blank lines allowed between):
 *
 *   <!-- readme-test: name=producer unique=orders,billing -->
 *   <!-- readme-test: skip a fragment: continues the consumer quick start -->
 *
 * - `name=<id>`: how the tests refer to the block (the pack test picks the quick starts by name).
 * - `unique=<a,b,…>`: quoted string literals with exactly these values ('orders', "billing") get a per-run
 *   suffix, so two runs on one shared broker never share a topic or a consumer group. Nothing else is rewritten
 *   but the connection literals (see `prepareBlock`).
 * - `skip <reason>`: the block is not meant to run on its own; the reason is required, so no block is left out
 *   by accident.
 *
 *   node scripts/readme-blocks.ts [README.md]     lists the blocks and their directives
 */
import { readFileSync } from 'node:fs';

export interface ReadmeBlock {
  /** 1-based position among the file's ```ts blocks. */
  index: number;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  name: string | undefined;
  unique: string[];
  /** Why the block does not run, when it says so. */
  skip: string | undefined;
}

const FENCE_OPEN = /^```(ts|typescript)\s*$/;
const DIRECTIVE = /^<!--\s*readme-test:\s*(.*?)\s*-->\s*$/;

export function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  let inFence: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (inFence !== undefined) {
      if (line.startsWith(inFence) && line.trim() === inFence) inFence = undefined;
      continue;
    }
    if (!FENCE_OPEN.test(line)) {
      const other = /^(`{3,}|~{3,})/.exec(line);
      if (other) inFence = other[1];
      continue;
    }
    const start = i;
    let end = i + 1;
    while (end < lines.length && (lines[end] ?? '').trim() !== '```') end++;
    if (end >= lines.length) throw new Error(`README line ${start + 1}: a \`\`\`ts block that is never closed`);
    blocks.push({
      index: blocks.length + 1,
      line: start + 1,
      code: `${lines.slice(start + 1, end).join('\n')}\n`,
      ...parseDirective(directiveAbove(lines, start), start + 1),
    });
    i = end;
  }
  return blocks;
}

function directiveAbove(lines: string[], fence: number): string | undefined {
  for (let j = fence - 1; j >= 0; j--) {
    const text = (lines[j] ?? '').trim();
    if (text === '') continue;
    return DIRECTIVE.exec(text)?.[1];
  }
  return undefined;
}

function parseDirective(text: string | undefined, line: number): Pick<ReadmeBlock, 'name' | 'unique' | 'skip'> {
  const result: Pick<ReadmeBlock, 'name' | 'unique' | 'skip'> = { name: undefined, unique: [], skip: undefined };
  if (text === undefined) return result;
  if (text === 'skip' || text.startsWith('skip ')) {
    const reason = text.slice(4).trim();
    if (!reason) throw new Error(`README line ${line}: 'readme-test: skip' needs a reason`);
    result.skip = reason;
    return result;
  }
  for (const token of text.split(/\s+/)) {
    const [key, value] = token.split('=', 2);
    if (key === 'name' && value) result.name = value;
    else if (key === 'unique' && value) result.unique = value.split(',').filter(Boolean);
    else throw new Error(`README line ${line}: unknown readme-test directive '${token}' (known: name=, unique=, skip <reason>)`);
  }
  return result;
}

export interface BlockTarget {
  /** Replaces the README's connection URL literal. */
  pgUrl: string;
  /** Replace the README's broker literal '127.0.0.1:9092' (one literal may become several). */
  brokers: string[];
  /** Appended to each `unique` literal. */
  suffix: string;
}

/** The README's own connection literals, which every runnable block uses as written. */
export const README_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const README_BROKER = '127.0.0.1:9092';

/**
 * The block's code aimed at this run's database, brokers and names. Imports are left alone: the caller
 * resolves 'zeroloss…' (a resolve hook in the repo, the installed tarball in the pack test).
 */
export function prepareBlock(block: ReadmeBlock, target: BlockTarget): string {
  let code = block.code
    .replaceAll(`'${README_PG_URL}'`, JSON.stringify(target.pgUrl))
    .replaceAll(`'${README_BROKER}'`, target.brokers.map((b) => JSON.stringify(b)).join(', '));
  for (const name of block.unique) {
    for (const quote of [`'`, `"`]) code = code.replaceAll(`${quote}${name}${quote}`, `${quote}${name}-${target.suffix}${quote}`);
  }
  return code;
}

if (import.meta.main) {
  const file = process.argv[2] ?? 'README.md';
  for (const block of readmeBlocks(readFileSync(file, 'utf8'))) {
    const tags = [
      block.name && `name=${block.name}`,
      block.unique.length > 0 && `unique=${block.unique.join(',')}`,
      block.skip && `skip: ${block.skip}`,
    ];
    process.stdout.write(`#${block.index} line ${block.line} ${tags.filter(Boolean).join(' ') || '(no directive)'}\n`);
  }
}
