import { CorruptError, formatBytes, InvalidArgumentError } from '@ferry/core';
import { type VerifyReport, verifyRegion } from '@ferry/region';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface VerifyCommandOptions {
  region?: string;
  repair: boolean;
  sample?: string;
}

/** `ferry verify`: every chunk of a path (or the volume) is in the region's store and hashes to its id. */
export async function verifyCommand(ctx: Context, out: Output, path: string | undefined, opts: VerifyCommandOptions): Promise<void> {
  const samplePercent = opts.sample === undefined ? undefined : parseSample(opts.sample);
  const region = await ctx.region(opts.region);
  const report = await verifyRegion(region, {
    ...(path === undefined ? {} : { path }),
    repair: opts.repair,
    ...(samplePercent === undefined ? {} : { samplePercent }),
    logger: ctx.logger,
  });
  out.result({ ...report }, humanVerify(report));
  const left = report.bad.filter((b) => !b.repaired).length;
  if (left > 0) {
    throw new CorruptError(
      `verify ${report.region}: ${left} chunk${left === 1 ? '' : 's'} bad or missing${opts.repair ? ' after repair' : ''}`,
    );
  }
  if (report.badFiles.length > 0) {
    const n = report.badFiles.length;
    throw new CorruptError(
      `verify ${report.region}: ${n} imported file${n === 1 ? '' : 's'} whose bytes do not match their origin's sha256`,
    );
  }
}

function parseSample(text: string): number {
  const n = Number(text.replace(/%$/, ''));
  if (!Number.isFinite(n) || n <= 0 || n > 100) throw new InvalidArgumentError(`--sample: expected a percent in (0, 100], got "${text}"`);
  return n;
}

function humanVerify(r: VerifyReport): string[] {
  const lines = [
    `${r.region}: verified ${r.chunks} chunk${r.chunks === 1 ? '' : 's'} (${formatBytes(r.bytes)}) under ${r.path}; ${r.bad.length} bad or missing`,
  ];
  for (const b of r.bad) {
    const state = b.repaired ? 'repaired' : b.problem;
    lines.push(`${r.region}: ${state}: ${b.chunk} (${b.detail}) used by ${b.files.join(', ')}`);
  }
  for (const f of r.badFiles) lines.push(`${r.region}: corrupt file: ${f.path}: ${f.detail}`);
  return lines;
}
