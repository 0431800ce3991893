/**
 * `node --import ./test/readme/zeroloss-hooks.ts block.mts`: runs code written for the published package
 * against the sources. 'zeroloss' and 'zeroloss/<x>' resolve through package.json "exports" with dist/…js
 * read as src/…ts (a subpath not yet in "exports" falls back to src/entry/<x>.ts), and any other bare
 * specifier of a file outside the repo (a README block in a temp dir) resolves as if imported from the repo,
 * so the block finds the repo's node_modules.
 */
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const ROOT = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { exports?: Record<string, unknown> };

function exportTarget(subpath: string): string | undefined {
  const entry = pkg.exports?.[subpath];
  const target = typeof entry === 'string' ? entry : (entry as { default?: string; import?: string } | undefined)?.default;
  return typeof target === 'string' ? target : undefined;
}

/** The source file behind a 'zeroloss…' specifier. */
export function sourceFor(specifier: string): URL {
  const subpath = specifier === 'zeroloss' ? '.' : `./${specifier.slice('zeroloss/'.length)}`;
  const target = exportTarget(subpath);
  if (target) return new URL(target.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'), ROOT);
  return new URL(subpath === '.' ? 'src/index.ts' : `src/entry/${subpath.slice(2)}.ts`, ROOT);
}

const isBare = (specifier: string) => !/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(specifier);

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'zeroloss' || specifier.startsWith('zeroloss/')) {
      return nextResolve(sourceFor(specifier).href, context);
    }
    if (isBare(specifier) && context.parentURL && !context.parentURL.startsWith(ROOT.href)) {
      return nextResolve(specifier, { ...context, parentURL: new URL('package.json', ROOT).href });
    }
    return nextResolve(specifier, context);
  },
});
