// Moved to src/core/partition-for.ts (pure logic, no driver). This re-export stays only until src/index.ts,
// which imports it from here, is replaced by the entry points of issue #12; nothing else uses it.
export { partitionFor } from '../../core/partition-for.ts';
