import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FencedError, messageOf } from '@ferry/core';
import type { RedisClient } from './redis.js';
import { assertOneSlot } from './slots.js';

/*
 * The Lua scripts of lua/*.lua, one per file. Each is sent as lua/common.lua followed by the
 * script, so the shared helpers (entry layout, reference counting, id order) exist once; that
 * concatenation is the only preprocessing. `lua/` sits next to `src/` and `dist/`, so the same
 * relative URL works from the sources (tests) and from the build.
 */

const LUA_DIR = new URL('../lua/', import.meta.url);

/*
 * `keys`: how many keys a script takes; with `moreKeys`, at least that many (the caller says how
 * many it passes). `readOnly`: the script writes nothing, and runs through EVALSHA_RO, so a
 * Redis user without write access (a reader) may run it and a write in it is refused.
 */
const SCRIPTS = {
  commit: { file: 'commit.lua', keys: 10 },
  delete: { file: 'delete.lua', keys: 7 },
  rename: { file: 'rename.lua', keys: 5 },
  list: { file: 'list.lua', keys: 2, readOnly: true },
  ack: { file: 'ack.lua', keys: 1 },
  apply: { file: 'apply.lua', keys: 11 },
  resync: { file: 'resync.lua', keys: 2 },
  snapshot: { file: 'snapshot.lua', keys: 10 },
  prune: { file: 'prune.lua', keys: 12 },
  track: { file: 'track.lua', keys: 3 },
  reconcile: { file: 'reconcile.lua', keys: 6 },
  lease: { file: 'lease.lua', keys: 3 },
  gcClaim: { file: 'gc-claim.lua', keys: 9, moreKeys: true },
  hold: { file: 'hold.lua', keys: 2 },
  gcFinish: { file: 'gc-finish.lua', keys: 7 },
  present: { file: 'present.lua', keys: 8 },
  gcOrphans: { file: 'gc-orphans.lua', keys: 8 },
  copyFailure: { file: 'copy-failure.lua', keys: 3 },
  membersHeartbeat: { file: 'members-heartbeat.lua', keys: 2 },
  membersLeave: { file: 'members-leave.lua', keys: 2 },
  membersLive: { file: 'members-live.lua', keys: 2, readOnly: true },
} as const satisfies Record<string, ScriptSpec>;

interface ScriptSpec {
  file: string;
  keys: number;
  moreKeys?: true;
  readOnly?: true;
}

const spec = (name: ScriptName): ScriptSpec => SCRIPTS[name];

export type ScriptName = keyof typeof SCRIPTS;

// ioredis method names; prefixed so they cannot collide with commands or other libraries' scripts.
const commandName = (name: ScriptName) => `ferryMeta_${name}`;

let sources: Map<ScriptName, string> | undefined;

function loadSources(): Map<ScriptName, string> {
  if (!sources) {
    const read = (file: string) => readFileSync(new URL(file, LUA_DIR), 'utf8');
    const common = read('common.lua');
    sources = new Map(Object.entries(SCRIPTS).map(([name, spec]) => [name as ScriptName, `${common}\n${read(spec.file)}`]));
  }
  return sources;
}

/** Source text of a script as sent to Redis (for tests and for SCRIPT LOAD by operators). */
export function scriptSource(name: ScriptName): string {
  return loadSources().get(name) as string;
}

const installed = new WeakSet<RedisClient>();

/** Register the scripts on a client (EVALSHA, falling back to EVAL once per connection). */
export function installScripts(redis: RedisClient): void {
  if (installed.has(redis)) return;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    // The caller of a script with more keys says how many it passes.
    const { keys, moreKeys } = spec(name);
    redis.defineCommand(commandName(name), { ...(moreKeys ? {} : { numberOfKeys: keys }), lua: scriptSource(name) });
  }
  installed.add(redis);
}

type ScriptFn = (args: Array<string | number>) => Promise<unknown>;

const FENCED_REPLY = 'FERRY_FENCED ';

/** Run a script; a write refused by its fencing check (error reply FERRY_FENCED) is a FencedError. */
export async function runScript(redis: RedisClient, name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
  const { keys: count, moreKeys, readOnly } = spec(name);
  if (moreKeys ? keys.length < count : keys.length !== count) {
    throw new Error(`script ${name} takes ${moreKeys ? 'at least ' : ''}${count} keys, got ${keys.length}`);
  }
  // On a Cluster a script runs on the node of its keys' slot; keys in two slots would be CROSSSLOT.
  assertOneSlot(`script ${name}`, keys);
  try {
    if (readOnly) return await runReadOnly(redis, name, keys, args);
    installScripts(redis);
    const fn = (redis as unknown as Record<string, ScriptFn>)[commandName(name)] as ScriptFn;
    // One array, not spread arguments: a call with a million arguments overflows the stack.
    return await fn.call(redis, moreKeys ? [keys.length, ...keys, ...args] : [...keys, ...args]);
  } catch (err) {
    const message = messageOf(err);
    if (message.startsWith(FENCED_REPLY)) throw new FencedError(`${name} refused: ${message.slice(FENCED_REPLY.length)}`, { cause: err });
    throw err;
  }
}

const shas = new Map<ScriptName, string>();

/**
 * EVALSHA_RO, falling back to EVAL_RO when the server does not have the script yet: a Redis user
 * with read access only may run it, and the server refuses any write in it.
 */
async function runReadOnly(redis: RedisClient, name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
  let sha = shas.get(name);
  if (sha === undefined) {
    sha = createHash('sha1').update(scriptSource(name)).digest('hex');
    shas.set(name, sha);
  }
  try {
    return await redis.call('evalsha_ro', [sha, keys.length, ...keys, ...args]);
  } catch (err) {
    if (!messageOf(err).startsWith('NOSCRIPT')) throw err;
    return redis.call('eval_ro', [scriptSource(name), keys.length, ...keys, ...args]);
  }
}
