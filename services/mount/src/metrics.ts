import { serviceRegistry, type TierBytesSource, tierBytesCounter } from '@ferry/runtime';
import { Counter, Gauge, Histogram } from 'prom-client';

/**
 * The mount's Prometheus metrics in a registry of its own (tests run several mounts in one
 * process; process metrics only when asked). Gauges and tier bytes are read when scraped, so
 * the read path only counts.
 */
export function createMetrics(options: {
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  openFiles?: () => number;
  processMetrics?: boolean;
}) {
  const registry = serviceRegistry({
    labels: { volume: options.volume, region: options.region },
    defaultMetrics: options.processMetrics ?? false,
  });
  const { tiers, openFiles } = options;
  return {
    registry,
    ops: new Counter({
      name: 'ferry_mount_ops_total',
      help: 'File system calls by operation and result (ok, or the errno name)',
      labelNames: ['op', 'result'] as const,
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'ferry_mount_op_seconds',
      help: 'Time to answer a file system call, by operation',
      labelNames: ['op'] as const,
      buckets: [0.0001, 0.001, 0.005, 0.025, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    }),
    bytesRead: new Counter({
      name: 'ferry_mount_read_bytes_total',
      help: 'Bytes returned to read calls',
      registers: [registry],
    }),
    openFiles: new Gauge({
      name: 'ferry_mount_open_files',
      help: 'Files open on the mount',
      registers: [registry],
      collect() {
        if (openFiles) this.set(openFiles());
      },
    }),
    tierBytes: tierBytesCounter('ferry_mount_tier_bytes_total', registry, tiers),
  };
}

export type MountMetrics = ReturnType<typeof createMetrics>;
