/**
 * The layering of zeroloss, checked by `npm run lint` (depcruise src). Ports and adapters:
 *
 *   core      pure logic and the message format: imports only core (zod and node builtins)
 *   ports     the interfaces features need from the outside world: import only core and ports
 *   features  outbox, consumer, operations (and metrics, their prom-client helper): core, ports and each other
 *   adapters  one folder per backend, the only code that touches a driver; never a feature
 *   roots     cli, demo, examples, entry: compose everything, but load drivers only through adapters
 *
 * Each driver is loaded in exactly one file, its adapter's `<x>-driver.ts` (a top-level dynamic import, so a
 * missing optional peer gives ZL_DRIVER_MISSING instead of a resolver error); elsewhere only its types.
 */

const FEATURES = '^src/(outbox|consumer|operations|metrics)/';
const ROOTS = '^src/(cli|demo|examples|entry)/|^src/index\\.ts$';

/** Each driver package, the one file that loads it, and the folders that may name its types. */
const DRIVERS = [
  { name: 'pg', file: 'src/adapters/postgres/pg-driver.ts', types: ['src/adapters/postgres/'] },
  { name: '@electric-sql/pglite', file: 'src/adapters/postgres/pglite-driver.ts', types: ['src/adapters/postgres/'] },
  { name: '@platformatic/kafka', file: 'src/adapters/kafka/kafka-driver.ts', types: ['src/adapters/kafka/'] },
  { name: 'ioredis', file: 'src/adapters/redis/redis-driver.ts', types: ['src/adapters/redis/', 'src/adapters/redis-streams/'] },
  { name: 'amqplib', file: 'src/adapters/rabbitmq/rabbitmq-driver.ts', types: ['src/adapters/rabbitmq/'] },
  { name: 'pg-logical-replication', file: 'src/adapters/postgres/wal/logical-replication-driver.ts', types: ['src/adapters/postgres/wal/'] },
  // Tracing and logging: optional peers too, each loaded in one file of its adapter. The root entry may reach
  // these two files: they load their package on first use and fall back (no tracing, plain JSON lines) when
  // it is missing, so `import 'zeroloss'` still works without either.
  { name: '@opentelemetry/api', file: 'src/adapters/otel/otel-driver.ts', types: ['src/adapters/otel/'], rootMayReach: true },
  { name: 'pino', file: 'src/adapters/log/pino-driver.ts', types: ['src/adapters/log/'], rootMayReach: true },
  // The caller's-transaction adapters (zeroloss/kysely and friends): the same rule for the same reason.
  { name: 'kysely', file: 'src/adapters/orm/kysely-driver.ts', types: ['src/adapters/orm/'] },
  { name: 'postgres', file: undefined, types: ['src/adapters/orm/'] },
  { name: 'drizzle-orm', file: 'src/adapters/orm/drizzle-driver.ts', types: ['src/adapters/orm/'] },
  { name: 'knex', file: undefined, types: ['src/adapters/orm/'] },
  { name: 'typeorm', file: undefined, types: ['src/adapters/orm/'] },
  { name: '@prisma/client', file: undefined, types: ['src/adapters/orm/'] },
];

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const driverPath = (name) => `node_modules/${escape(name)}/`;
const DRIVER_FILES = DRIVERS.filter((d) => d.file !== undefined).map((d) => `^${escape(d.file)}$`);

module.exports = {
  forbidden: [
    {
      name: 'core-imports-only-core',
      comment:
        'core is the pure part every other layer builds on: an import of a port, feature or adapter from it would ' +
        'make every layer depend on that one, and the root entry would load what core pulls in.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'core-no-npm-but-zod',
      comment: 'core runs anywhere the root entry runs: node builtins and zod (config schemas) only.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-bundled', 'npm-no-pkg', 'npm-unknown'], pathNot: '^node_modules/zod/' },
    },
    {
      name: 'ports-import-only-core-and-ports',
      comment: 'ports are the interfaces between features and adapters; depending on either side would turn them into one of them.',
      severity: 'error',
      from: { path: '^src/ports/' },
      to: { path: '^src/', pathNot: '^src/(core|ports)/' },
    },
    {
      name: 'features-import-no-adapter',
      comment:
        'features (outbox, consumer, operations) take ports; building a concrete adapter ties them to one backend ' +
        'and makes the root entry load its driver. Wire adapters in a composition root (entry, cli, demo, examples).',
      severity: 'error',
      from: { path: FEATURES },
      to: { path: `^src/(adapters|cli|demo|examples|entry)/|^src/index\\.ts$` },
    },
    {
      name: 'features-npm-only-zod-and-prom-client',
      comment: 'features are backend-neutral: zod (config), prom-client (metrics) and node builtins; anything else belongs in an adapter.',
      severity: 'error',
      from: { path: FEATURES },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-bundled', 'npm-no-pkg', 'npm-unknown'],
        pathNot: '^node_modules/(zod|prom-client)/',
      },
    },
    {
      name: 'adapters-import-no-feature',
      comment: 'an adapter implements a port for a feature; importing the feature back would make the two one module.',
      severity: 'error',
      from: { path: '^src/adapters/' },
      to: { path: `${FEATURES}|^src/(cli|demo|examples|entry)/|^src/index\\.ts$` },
    },
    {
      name: 'drivers-load-only-in-their-driver-file',
      comment:
        'a driver (an optional peer) is loaded in one file per adapter, which turns its absence into ZL_DRIVER_MISSING ' +
        'naming the package to install; a value import anywhere else would fail with a resolver error instead.',
      severity: 'error',
      from: { path: '^src/', pathNot: DRIVER_FILES },
      to: { path: `^(${DRIVERS.map((d) => driverPath(d.name)).join('|')})`, dependencyTypesNot: ['type-only'] },
    },
    ...DRIVERS.map((driver) => ({
      name: `${driver.name.replace(/[@/]/g, '-').replace(/^-/, '')}-types-only-in-its-adapter`,
      comment:
        `the types of ${driver.name} belong to its adapter (and to composition roots that pass its objects through); ` +
        'elsewhere they would leak a backend into code that must not know it.',
      severity: 'error',
      from: { path: '^src/', pathNot: [...driver.types.map((dir) => `^${escape(dir)}`), ROOTS] },
      to: { path: `^${driverPath(driver.name)}`, dependencyTypes: ['type-only'] },
    })),
    {
      name: 'root-entry-loads-no-driver',
      comment: "`import 'zeroloss'` must work with no driver installed: nothing it reaches may load one.",
      severity: 'error',
      from: { path: '^src/(index|entry/index)\\.ts$' },
      to: {
        path: DRIVERS.filter((d) => d.file !== undefined && !d.rootMayReach)
          .map((d) => `^${escape(d.file)}$`)
          .join('|'),
        reachable: true,
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports are seen (and marked 'type-only'), so the rules can allow exactly those.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
