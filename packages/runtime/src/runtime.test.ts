import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import { InvalidArgumentError, type Logger, silentLogger } from '@ferry/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  bearerAuth,
  bearerOf,
  bearerRoles,
  closeGracefully,
  exitSoon,
  hasBearer,
  listen,
  parseListenAddress,
  sameSecret,
  serviceRegistry,
  stopSignal,
  stopWithin,
} from './index.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((app) => app.close()));
});

function app(): FastifyInstance {
  const created = Fastify({ logger: false });
  apps.push(created);
  return created;
}

describe('listen', () => {
  it('parses host:port and bracketed IPv6 hosts', () => {
    expect(parseListenAddress('127.0.0.1:7600')).toEqual({ host: '127.0.0.1', port: 7600 });
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListenAddress('localhost')).toThrow(InvalidArgumentError);
    expect(() => parseListenAddress('localhost:99999')).toThrow(/expected host:port/);
  });

  it('binds a real socket on 127.0.0.1 and reports the port it got', async () => {
    const server = app();
    server.get('/', async () => 'hello');
    const bound = await listen(server, '127.0.0.1:0');
    expect(bound.host).toBe('127.0.0.1');
    expect(bound.port).toBeGreaterThan(0);
    expect(bound.url).toBe(`http://127.0.0.1:${bound.port}`);
    expect(await (await fetch(bound.url)).text()).toBe('hello');
  });
});

describe('bearer token', () => {
  it('compares secrets of any length', () => {
    expect(sameSecret('s3cret', 's3cret')).toBe(true);
    expect(sameSecret('s3cret', 's3cre')).toBe(false);
    expect(sameSecret('', 'x')).toBe(false);
  });

  it('guards every route but the open ones, with a 401 that says Bearer', async () => {
    const server = app();
    server.addHook('onRequest', bearerAuth({ token: 'tok', open: (_req, route) => route === '/healthz' }));
    server.get('/healthz', async () => ({ ok: true }));
    server.get('/secret', async (req) => ({ token: bearerOf(req), ok: hasBearer(req, 'tok') }));
    expect((await server.inject({ url: '/healthz?verbose' })).statusCode).toBe(200);
    expect((await server.inject({ url: '/%68ealthz' })).statusCode).toBe(200);
    for (const url of ['/%73ecret', '/secret?/healthz', '/secret#/healthz', '/nowhere/healthz']) {
      expect((await server.inject({ url })).statusCode, url).toBe(401);
    }
    const refused = await server.inject({ url: '/secret', headers: { authorization: 'Bearer nope' } });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect(refused.json()).toEqual({ error: 'UNAUTHORIZED', message: 'a valid bearer token is required' });
    expect((await server.inject({ url: '/secret' })).statusCode).toBe(401);
    expect((await server.inject({ url: '/secret', headers: { authorization: 'Basic tok' } })).statusCode).toBe(401);
    const allowed = await server.inject({ url: '/secret', headers: { authorization: 'Bearer tok' } });
    expect(allowed.json()).toEqual({ token: 'tok', ok: true });
  });

  it('lets nothing through when no token is configured', async () => {
    const server = app();
    server.addHook('onRequest', bearerAuth({ token: undefined }));
    server.get('/', async () => 'x');
    const res = await server.inject({ url: '/', headers: { authorization: 'Bearer ' } });
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('UNAUTHORIZED');
  });
});

describe('bearer roles', () => {
  it('grants a role to its token and to every stronger one; a weaker valid token gets 403', async () => {
    const server = app();
    server.addHook(
      'onRequest',
      bearerRoles({
        roles: [
          ['read', 'r-tok'],
          ['write', 'w-tok'],
        ],
        required: (req, route) => (route === '/healthz' ? undefined : req.method === 'GET' ? 'read' : 'write'),
      }),
    );
    server.get('/healthz', async () => 'ok');
    server.get('/x', async () => 'read');
    server.put('/x', async () => 'wrote');
    const as = (token: string | undefined, method: 'GET' | 'PUT') =>
      server.inject({ method, url: '/x', ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    expect((await server.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await as('r-tok', 'GET')).statusCode).toBe(200);
    expect((await as('w-tok', 'GET')).statusCode).toBe(200);
    expect((await as('w-tok', 'PUT')).statusCode).toBe(200);
    const denied = await as('r-tok', 'PUT');
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toEqual({ error: 'ACCESS_DENIED', message: 'this request needs the write token' });
    expect((await as('nope', 'PUT')).statusCode).toBe(401);
    expect((await as(undefined, 'GET')).statusCode).toBe(401);
  });

  it('grants a role without a token to nobody', async () => {
    const server = app();
    server.addHook(
      'onRequest',
      bearerRoles({
        roles: [
          ['read', 'r'],
          ['write', undefined],
        ],
        required: () => 'write',
      }),
    );
    server.get('/', async () => 'x');
    expect((await server.inject({ url: '/', headers: { authorization: 'Bearer r' } })).statusCode).toBe(403);
    expect((await server.inject({ url: '/', headers: { authorization: 'Bearer ' } })).statusCode).toBe(401);
  });
});

describe('serviceRegistry', () => {
  it('keeps each registry apart and labels its metrics', async () => {
    const a = serviceRegistry({ labels: { region: 'eu' } });
    const b = serviceRegistry();
    new Counter({ name: 'ferry_test_total', help: 'test', registers: [a] }).inc(3);
    expect(await a.metrics()).toContain('ferry_test_total{region="eu"} 3');
    expect(await b.metrics()).not.toContain('ferry_test_total');
    expect(await b.metrics()).not.toContain('process_cpu');
  });

  it('adds the process metrics when asked', async () => {
    const registry = serviceRegistry({ defaultMetrics: true });
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_heap_size_used_bytes');
  });
});

describe('closeGracefully', () => {
  it('lets a running request finish within the grace period', async () => {
    const server = app();
    let arrived: () => void = () => {};
    const running = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    server.get('/slow', async () => {
      arrived();
      await new Promise((resolve) => setTimeout(resolve, 100));
      return 'done';
    });
    const bound = await listen(server, '127.0.0.1:0');
    const response = fetch(`${bound.url}/slow`).then((r) => r.text());
    // The stop begins while the request runs (not before it arrives: that one would get a 503).
    await running;
    const started = Date.now();
    await closeGracefully(server, { graceMs: 5_000 });
    expect(await response).toBe('done');
    // The client's kept-alive connection does not hold the stop for the whole grace period.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('cuts a connection still open after the grace period', async () => {
    const server = app();
    // A response that never ends, like a huge download to a stalled client.
    server.get('/endless', (_req, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'application/octet-stream' });
      reply.raw.write('x');
    });
    const bound = await listen(server, '127.0.0.1:0');
    const socket = connect(bound.port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    const firstByte = new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write('GET /endless HTTP/1.1\r\nhost: x\r\n\r\n');
    await firstByte;
    const started = Date.now();
    await closeGracefully(server, { graceMs: 200 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await closed;
    expect(server.server.listening).toBe(false);
  });
});

describe('stopSignal', () => {
  it('resolves on the first signal and exits with 130 on a second one', async () => {
    const info = vi.fn();
    const logger = { ...silentLogger, info } as unknown as Logger;
    const exit = vi.fn();
    const signals = Object.assign(new EventEmitter(), { exit });
    const stopped = stopSignal(logger, signals);
    signals.emit('SIGTERM');
    await stopped;
    expect(info).toHaveBeenCalledWith({ signal: 'SIGTERM' }, 'signal received');
    expect(exit).not.toHaveBeenCalled();
    signals.emit('SIGTERM');
    expect(exit).toHaveBeenCalledWith(130);
  });

  it('stops on SIGINT too', async () => {
    const signals = Object.assign(new EventEmitter(), { exit: vi.fn() });
    const stopped = stopSignal(silentLogger, signals);
    signals.emit('SIGINT');
    await expect(stopped).resolves.toBeUndefined();
  });
});

describe('stopWithin', () => {
  const warnings: string[] = [];
  const logger: Logger = { ...silentLogger, warn: (_obj: object | string, msg?: string) => void warnings.push(msg ?? '') };

  it('waits for a stop that finishes in time', async () => {
    let stopped = false;
    const inTime = await stopWithin(
      async () => {
        await new Promise((r) => setTimeout(r, 20));
        stopped = true;
      },
      { timeoutMs: 1_000, logger, what: 'svc' },
    );
    expect([inTime, stopped]).toEqual([true, true]);
  });

  it('gives up on a stop that hangs (a Redis that never answers) at the deadline, saying so', async () => {
    warnings.length = 0;
    const started = Date.now();
    const inTime = await stopWithin(() => new Promise<void>(() => {}), { timeoutMs: 100, logger, what: 'svc' });
    expect(inTime).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(warnings).toEqual(['svc: stop deadline passed; exiting with work in flight']);
  });

  it('exitSoon exits with the code after the delay without keeping the process alive', async () => {
    const exits: number[] = [];
    exitSoon(0, 10, (code) => exits.push(code));
    await new Promise((r) => setTimeout(r, 50));
    expect(exits).toEqual([0]);
  });

  it('decides the role by the route fastify matched, so a percent-encoded path needs what its route needs', async () => {
    const server = app();
    server.addHook(
      'onRequest',
      bearerRoles({
        roles: [
          ['read', 'r'],
          ['write', 'w'],
        ],
      }),
    );
    server.get('/healthz', { config: { auth: 'open' } }, async () => 'ok');
    server.get('/chunks/:id', { config: { auth: 'read' } }, async () => 'bytes');
    server.post('/chunks/:id/fill', { config: { auth: 'write' } }, async () => 'filled');
    const as = (token: string | undefined, method: 'GET' | 'POST', url: string) =>
      server.inject({ method, url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    expect((await as(undefined, 'GET', '/healthz')).statusCode).toBe(200);
    expect((await as(undefined, 'GET', '/%68ealthz')).statusCode).toBe(200);
    expect((await as('r', 'GET', '/chunks/a')).statusCode).toBe(200);
    for (const fill of ['/chunks/a/fill', '/chunks/a/%66ill', '/chunks/a/%66%69%6c%6c', '/%63hunks/a/fill']) {
      const refused = await as('r', 'POST', `${fill}?size=1`);
      expect(refused.statusCode, fill).toBe(403);
      expect((await as('w', 'POST', fill)).body, fill).toBe('filled');
    }
    // No route: the weakest role, so a caller without a token learns nothing of which paths exist.
    expect((await as(undefined, 'GET', '/nowhere')).statusCode).toBe(401);
    expect((await as('r', 'GET', '/nowhere')).statusCode).toBe(404);
  });

  it('tells a custom `required` the pattern of the route fastify matched, never the raw URL', async () => {
    const server = app();
    const seen: Array<string | undefined> = [];
    server.addHook(
      'onRequest',
      bearerRoles({
        roles: [
          ['read', 'r'],
          ['write', 'w'],
        ],
        required: (_req, route) => {
          seen.push(route);
          return route === '/chunks/:id/fill' ? 'write' : 'read';
        },
      }),
    );
    server.post('/chunks/:id/fill', async () => 'filled');
    const urls = ['/chunks/a/fill', '/chunks/a/%66ill', '/chunks/a/%66%69%6C%6C', '/chunks/a/%66%69%6c%6c', '/%63hunks/a/%66ill?x=/y'];
    for (const url of urls) {
      const res = await server.inject({ method: 'POST', url, headers: { authorization: 'Bearer r' } });
      expect(res.statusCode, url).toBe(403);
    }
    expect(seen).toEqual(urls.map(() => '/chunks/:id/fill'));
    // Spellings fastify does not decode to the route match no route at all: nothing is run.
    for (const url of ['/chunks/a%2Ffill', '/chunks/a%2ffill', '/chunks/a/%2566ill', '/chunks/a/%66ILL']) {
      seen.length = 0;
      expect((await server.inject({ method: 'POST', url, headers: { authorization: 'Bearer r' } })).statusCode, url).toBe(404);
      expect(seen).toEqual([undefined]);
    }
  });
});
