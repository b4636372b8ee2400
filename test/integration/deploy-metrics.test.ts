import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FerryConfig, parseConfig, silentLogger } from '@ferry/core';
import { Hub } from '@ferry/hub';
import type { Replicator } from '@ferry/replicator';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { CacheRegions } from '../support/cache-cluster.js';
import { type GatewayFixture, startGateway } from '../support/gateway.js';
import { REPO } from '../support/kube-manifests.js';
import { exportedFamilies, isExported, metricNames } from '../support/promql.js';
import { createRegions, type Regions } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

// The Grafana dashboard and the Prometheus alerts may only name metrics the services export
// today: a replicator, a cache node (a real process) and a gateway are started, their /metrics
// scraped, and every metric name in every query must be among what they announce. `up` is the
// one name Prometheus makes itself. promtool checks the rules (and the dashboard's queries).

const ALERTS = join(REPO, 'deploy/prometheus/alerts.yaml');
const DASHBOARD = join(REPO, 'deploy/grafana/ferry.json');
const PROMETHEUS_RULE = join(REPO, 'deploy/kubernetes/monitoring/prometheusrule.yaml');
const OPERATIONS = join(REPO, 'docs/operations.md');
/** Series Prometheus makes itself for every target. */
const SYNTHETIC = new Set(['up']);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
}

/** What a real `ferry hub` over the regions' source exports (its app on a free port, scraped once). */
async function hubMetrics(regions: Regions): Promise<string> {
  const hubSection = parseConfig({
    volume: 'x',
    source: 'r',
    regions: { r: { store: 'memory://x', redis: 'redis://127.0.0.1:1/0' } },
    hub: { readToken: 'hub-token-0123456789' },
  }).hub;
  const hub = new Hub({
    config: { ...regions.config, hub: hubSection } as FerryConfig,
    region: 'src',
    logger: silentLogger,
    listen: '127.0.0.1:0',
  });
  await hub.start();
  try {
    return await scrape(`${hub.address}/-/metrics`, 'hub-token-0123456789');
  } finally {
    await hub.stop();
  }
}

async function scrape(url: string, token: string): Promise<string> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, url).toBe(200);
  return res.text();
}

function dashboardQueries(d: Dashboard): Array<{ where: string; expr: string }> {
  const fromPanels = (panels: Panel[]): Array<{ where: string; expr: string }> =>
    panels.flatMap((p) => [
      ...(p.targets ?? []).flatMap((t) => (t.expr ? [{ where: `panel "${p.title}"`, expr: t.expr }] : [])),
      ...fromPanels(p.panels ?? []),
    ]);
  const fromVariables = d.templating.list
    .filter((v) => v.type === 'query' && v.query)
    .map((v) => ({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : (v.query?.query as string) }));
  return [...fromPanels(d.panels), ...fromVariables];
}

/** promtool on the PATH, or undefined; on CI (CI=true) its absence fails the test. */
function promtool(): string | undefined {
  const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (!found.error) return 'promtool';
  if (process.env.CI === 'true') throw new Error('promtool is missing (Debian package prometheus); .ci/run installs it');
  return undefined;
}

/** GitHub's anchor of a Markdown heading. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

const rules = parse(await readFile(ALERTS, 'utf8')) as RuleFile;
const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);

describe('dashboard and alerts against the metrics the services export', () => {
  let regions: Regions;
  let replicator: Replicator;
  let cache: CacheRegions;
  let gateway: GatewayFixture;
  const families = new Map<string, string>();
  const byService: Record<string, Map<string, string>> = {};

  beforeAll(async () => {
    regions = await createRegions({ mirrors: { eu: { api: { listen: '127.0.0.1:0', token: 'api-token-0123' } } } });
    replicator = await startReplicator(regions, 'eu', { listen: '127.0.0.1:0' });
    cache = await CacheRegions.create(inject('redisUrl'), { chunkSize: 1 << 20 });
    const [node] = await cache.startNodes([{ id: 'metrics-n1', weight: 1, capacity: '64MiB' }]);
    gateway = await startGateway({ metricsToken: 'metrics-token-0123' });
    const scraped = {
      replicator: await scrape(`${replicator.address}/metrics`, 'api-token-0123'),
      'cache-node': await scrape(`${node?.url}/metrics`, cache.token),
      gateway: await scrape(`${gateway.endpoint}/-/metrics`, 'metrics-token-0123'),
      hub: await hubMetrics(regions),
    };
    for (const [service, text] of Object.entries(scraped)) {
      byService[service] = exportedFamilies(text);
      for (const [name, kind] of byService[service]) families.set(name, kind);
    }
  });

  afterAll(async () => {
    await replicator?.stop();
    await regions?.close();
    await cache?.close();
    await gateway?.close();
  });

  it('each service announces its metric families', () => {
    expect([...(byService.replicator?.keys() ?? [])]).toEqual(
      expect.arrayContaining(['ferry_replicator_lag_seconds', 'ferry_replicator_copy_failures_total', 'ferry_replicator_leader']),
    );
    expect([...(byService['cache-node']?.keys() ?? [])]).toEqual(
      expect.arrayContaining(['ferry_cache_hits_total', 'ferry_cache_used_bytes', 'ferry_cache_capacity_bytes']),
    );
    expect(byService.gateway?.get('ferry_gateway_request_seconds')).toBe('histogram');
    expect(byService.hub?.get('ferry_hub_requests_total')).toBe('counter');
  });

  it('every metric the dashboard queries is exported', () => {
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(15);
    const unknown = queries.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !SYNTHETIC.has(name) && !isExported(name, families))
        .map((name) => `${where}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('every metric the alerts query is exported', () => {
    expect(alerts.length).toBe(6);
    const unknown = alerts.flatMap((r) =>
      metricNames(r.expr)
        .filter((name) => !SYNTHETIC.has(name) && !isExported(name, families))
        .map((name) => `${r.alert}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('the name check finds names that are not exported', () => {
    expect(
      metricNames('sum by (region) (rate(ferry_nope_total{region=~"$region"}[5m])) / on (x) group_left ferry_cache_used_bytes'),
    ).toEqual(['ferry_nope_total', 'ferry_cache_used_bytes']);
    expect(isExported('ferry_gateway_request_seconds_bucket', families)).toBe(true);
    expect(isExported('ferry_replicator_leader_count', families)).toBe(false);
  });
});

describe('alert rules', () => {
  it('every alert links its runbook section in docs/operations.md', async () => {
    const headings = new Set([...(await readFile(OPERATIONS, 'utf8')).matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchor(m[1] as string)));
    for (const rule of alerts) {
      const url = rule.annotations?.runbook_url ?? '';
      expect(url, rule.alert).toMatch(/^docs\/operations\.md#/);
      expect([...headings], `${rule.alert}: ${url}`).toContain(url.split('#')[1]);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
    }
  });

  it('the PrometheusRule for prometheus-operator has the same groups as alerts.yaml', async () => {
    const object = parse(await readFile(PROMETHEUS_RULE, 'utf8')) as { spec: RuleFile };
    expect(object.spec.groups).toEqual(rules.groups);
  });

  it.skipIf(promtool() === undefined)('promtool accepts the rules, and the dashboard queries as rules', async () => {
    const checked = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(checked.status, checked.stdout + checked.stderr).toBe(0);
    // The dashboard's queries with Grafana's variables filled in, as recording rules: promtool
    // then parses each one.
    const dir = await mkdtemp(join(tmpdir(), 'ferry-promtool-'));
    try {
      const exprs = dashboardQueries(dashboard)
        .filter((q) => !q.where.startsWith('variable'))
        .map((q, i) => ({
          record: `ferry:dashboard_query_${i}`,
          expr: q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h').replaceAll('$region', '.*'),
        }));
      const file = join(dir, 'dashboard.yaml');
      await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs }] }));
      const dash = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(dash.status, dash.stdout + dash.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
