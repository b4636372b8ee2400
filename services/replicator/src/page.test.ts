import { schemaDefaults } from '@ferry/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { build } from './app.js';
import type { PanelSource } from './page.js';

const defaults = schemaDefaults().regions.r;
if (!defaults?.api) throw new Error('the schema defaults have no api section');
const limits = defaults.api.limits;
const READ = 'read-token-for-the-page-0123';
const ADMIN = 'admin-token-for-the-page-0123';

const panels: PanelSource = {
  regions: async () => ({ volume: 'v', source: 'src', at: 1, regions: [{ region: 'src', role: 'source' }] }),
  nodes: async () => ({ region: 'src', cache: false, nodes: [] }),
  path: async (path) => ({ path, files: 0, bytes: 0, regions: [] }),
  history: () => ({ everySeconds: 10, keepSeconds: 3600, regions: {} }),
};

function api(tokens: { read?: string; admin?: string; open: boolean }) {
  return build({
    tokens,
    limits,
    registry: new Registry(),
    status: async () => ({}),
    health: async () => ({ ok: true }),
    retryFailed: async () => 0,
    panels,
  });
}

const basic = (password: string) => `Basic ${Buffer.from(`anyone:${password}`).toString('base64')}`;

describe('the status page routes', () => {
  it('serve the page, its script and style, and the JSON panels; an open API without a token', async () => {
    const app = api({ open: true });
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(page.body).toContain('<script src="page.js"');
    expect((await app.inject({ url: '/page.js' })).headers['content-type']).toMatch(/^text\/javascript/);
    expect((await app.inject({ url: '/page.css' })).headers['content-type']).toMatch(/^text\/css/);
    expect((await app.inject({ url: '/api/regions' })).json()).toMatchObject({ volume: 'v', regions: [{ region: 'src' }] });
    expect((await app.inject({ url: '/api/path?p=/models/x' })).json()).toMatchObject({ path: '/models/x' });
    expect((await app.inject({ url: '/api/path' })).statusCode).toBe(400);
    expect((await app.inject({ url: '/api/history' })).json()).toMatchObject({ keepSeconds: 3600 });
    await app.close();
  });

  it('need the read token: a bearer header, or Basic auth on GET and HEAD only (what a browser sends)', async () => {
    const app = api({ read: READ, admin: ADMIN, open: false });
    const none = await app.inject({ url: '/' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toEqual(['Basic realm="ferry", charset="UTF-8"', 'Bearer']);
    expect((await app.inject({ url: '/', headers: { authorization: basic('wrong') } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/', headers: { authorization: basic(READ) } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'HEAD', url: '/', headers: { authorization: basic(READ) } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/nodes', headers: { authorization: `Bearer ${READ}` } })).statusCode).toBe(200);
    // What queues work: bearer admin token only; Basic is refused there even with the admin token.
    const post = await app.inject({ method: 'POST', url: '/retry-failed', headers: { authorization: basic(ADMIN) } });
    expect(post.statusCode).toBe(401);
    expect(post.headers['www-authenticate']).toBe('Bearer');
    expect((await app.inject({ method: 'POST', url: '/retry-failed', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode).toBe(
      200,
    );
    // The page carries no token.
    const page = await app.inject({ url: '/', headers: { authorization: basic(READ) } });
    expect(page.body).not.toContain(READ);
    await app.close();
  });
});
