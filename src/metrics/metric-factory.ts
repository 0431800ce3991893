import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Makes metrics on one registry, reusing one already registered under the same name, so several relays,
 * consumers and tools in one process can share a registry (prom-client throws on a second registration).
 */
export function metricFactory(registry: Registry) {
  const registers = [registry];
  return {
    counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
      return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers });
    },
    gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
      return (registry.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames, registers });
    },
    histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
      return (registry.getSingleMetric(name) as Histogram<L> | undefined) ?? new Histogram({ name, help, labelNames, buckets, registers });
    },
  };
}
