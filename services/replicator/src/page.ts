import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import type { HistoryPanel } from './history.js';
import type { NodesPanel, PathPanel, RegionsPanel } from './panels.js';

/** What the status page's panels read: the daemon computes them with the same code as `ferry status --json`. */
export interface PanelSource {
  regions(): Promise<RegionsPanel>;
  nodes(): Promise<NodesPanel>;
  path(path: string): Promise<PathPanel>;
  history(): HistoryPanel;
}

/** The page's files: plain HTML, CSS and one small script, served as they are (no build step). */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/page.css': { file: 'page.css', type: 'text/css; charset=utf-8' },
  '/page.js': { file: 'page.js', type: 'text/javascript; charset=utf-8' },
};

function asset(file: string): string {
  return readFileSync(new URL(`../static/${file}`, import.meta.url), 'utf8');
}

/**
 * The read-only status page at `/` and the JSON behind each of its panels (`/api/regions`,
 * `/api/nodes`, `/api/path?p=`, `/api/history`), all behind the read token (or open with the API).
 */
export function pageRoutes(source: PanelSource): (app: FastifyInstance) => void {
  const files = Object.entries(ASSETS).map(([route, a]) => ({ route, type: a.type, body: asset(a.file) }));
  return (app) => {
    const read = { config: { auth: 'read' } };
    for (const f of files) {
      app.get(f.route, read, async (_req, reply) =>
        reply
          .header('content-type', f.type)
          .header('cache-control', 'no-store')
          // The page loads only its own script and style and is framed by nobody.
          .header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
          .header('x-content-type-options', 'nosniff')
          .send(f.body),
      );
    }
    app.get('/api/regions', read, async () => source.regions());
    app.get('/api/nodes', read, async () => source.nodes());
    app.get<{ Querystring: { p?: string } }>('/api/path', read, async (req) => {
      const p = req.query.p;
      if (typeof p !== 'string' || p === '') throw new InvalidArgumentError('give the path to look up as ?p=/models/…');
      return source.path(p);
    });
    app.get('/api/history', read, async () => source.history());
  };
}
