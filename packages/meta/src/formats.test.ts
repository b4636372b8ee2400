import { describe, expect, it } from 'vitest';
import { compareIds, idTime, parseStreamId } from './ids.js';
import { volumeKeys } from './keys.js';
import { historyChange, needsResync, parseXinfo, type SourceHistory, xinfoAdded } from './log.js';
import { parseChangeRecord } from './record.js';

describe('keys', () => {
  it('hash-tags every key by volume and validates the volume', () => {
    const keys = volumeKeys('models');
    expect(keys.entries).toBe('ferry:{models}:entries');
    expect(Object.values(keys).every((k) => k.startsWith('ferry:{models}:'))).toBe(true);
    expect(Object.keys(keys).sort()).toEqual([
      'acks',
      'backfill',
      'copied',
      'copyFailures',
      'cursor',
      'entries',
      'epoch',
      'extHashes',
      'fence',
      'gcClaims',
      'gcDeleted',
      'gcHolds',
      'gcInfo',
      'gcLock',
      'log',
      'missing',
      'moves',
      'nodes',
      'paths',
      'present',
      'reconcile',
      'refs',
      'resyncInfo',
      'resyncSeen',
      'seen',
      'tracking',
      'unreferenced',
      'unreferencedBy',
      'warmCursor',
      'warmFence',
      'warmLease',
      'warmLeaseEnd',
      'watcherLease',
      'watcherLeaseEnd',
    ]);
    expect(() => volumeKeys('Models')).toThrow(/invalid volume "Models"/);
    expect(() => volumeKeys('a}b')).toThrow(/invalid volume/);
    expect(() => volumeKeys('')).toThrow(/invalid volume/);
  });
});

describe('stream ids', () => {
  it('compare numerically, beyond 2^53 too', () => {
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareIds('18446744073709551615-1', '18446744073709551615-0')).toBeGreaterThan(0);
    expect(compareIds('5-5', '5-5')).toBe(0);
    expect(parseStreamId('42')).toBe('42-0');
    expect(idTime('1700000000123-4')).toBe(1700000000123);
    expect(() => parseStreamId('01-0')).toThrow(/invalid change-log id/);
    expect(() => parseStreamId('$')).toThrow(/invalid change-log id/);
  });
});

describe('parseChangeRecord', () => {
  it('gives every put entry the record id as version', () => {
    const put = '[{"path":"/a","size":0,"mtime":1,"chunkSize":8,"chunks":[]}]';
    const record = parseChangeRecord(['1700000000000-1', ['op', 'rename', 'put', put, 'del', '["/b"]']]);
    expect(record).toEqual({
      id: '1700000000000-1',
      op: 'rename',
      put: [{ path: '/a', size: 0, mtime: 1, chunkSize: 8, chunks: [], version: '1700000000000-1' }],
      del: ['/b'],
      time: 1700000000000,
    });
  });

  it('refuses malformed records with the id in the message', () => {
    expect(() => parseChangeRecord(['1-0', ['op', 'copy', 'put', '[]', 'del', '[]']])).toThrow(
      'malformed change record 1-0: unknown op "copy"',
    );
    expect(() => parseChangeRecord(['1-0', ['op', 'put', 'put', '[']])).toThrow('"put" is not JSON');
    expect(() => parseChangeRecord(['1-0', ['op', 'put', 'put', '[]']])).toThrow('no "del" field');
    expect(() => parseChangeRecord(['1-0', ['op', 'delete', 'put', '[]', 'del', '[1]']])).toThrow('non-string');
  });
});

describe('log bounds', () => {
  const xinfo = [
    'length',
    3,
    'last-generated-id',
    '9-0',
    'entries-added',
    5,
    'first-entry',
    ['7-0', ['op', 'put']],
    'last-entry',
    ['9-0', []],
  ];

  it('parse XINFO STREAM', () => {
    expect(parseXinfo(xinfo)).toEqual({ first: '7-0', last: '9-0', length: 3, trimmed: 2 });
    expect(parseXinfo(['length', 0, 'last-generated-id', '0-0', 'entries-added', 0, 'first-entry', null])).toEqual({
      length: 0,
      trimmed: 0,
    });
  });

  it('ask for a resync only when records after the cursor may be gone', () => {
    const bounds = parseXinfo(xinfo);
    expect(needsResync('6-0', bounds)).toBe(true);
    expect(needsResync('7-0', bounds)).toBe(false);
    expect(needsResync('0-0', { ...bounds, trimmed: 0 })).toBe(false);
    expect(needsResync('8-0', { last: '9-0', length: 0, trimmed: 5 })).toBe(true);
    expect(needsResync('9-0', { last: '9-0', length: 0, trimmed: 5 })).toBe(false);
  });
});

describe('history checks', () => {
  // A source whose log holds 7-0..9-0 of 5 records ever added (two trimmed), epoch "e1".
  const source: SourceHistory = { epoch: 'e1', first: '7-0', last: '9-0', added: 5, length: 3, trimmed: 2, cursorFound: true };

  it('read the records ever added from XINFO STREAM', () => {
    expect(xinfoAdded(['length', 3, 'entries-added', 5, 'first-entry', null])).toBe(5);
    expect(xinfoAdded(['length', 3])).toBe(0);
  });

  it('read on when the log continues from the cursor', () => {
    expect(historyChange({ cursor: '8-0', epoch: 'e1' }, source)).toBeUndefined();
    expect(historyChange({ cursor: '9-0' }, source)).toBeUndefined();
    expect(historyChange({ cursor: '0-0', epoch: 'e1' }, { ...source, first: '1-0', trimmed: 0, cursorFound: false })).toBeUndefined();
    // Everything trimmed but the mirror is at the end: nothing is missing.
    expect(historyChange({ cursor: '9-0' }, { ...source, first: undefined, length: 0, trimmed: 5, cursorFound: false })).toBeUndefined();
  });

  it('resync when the epoch changed (a Redis that came back empty or was replaced)', () => {
    expect(historyChange({ cursor: '8-0', epoch: 'e0' }, source)).toMatch(/epoch changed from e0 to e1/);
  });

  it('resync when the record at the cursor is gone while the log reaches back that far (rollback)', () => {
    expect(historyChange({ cursor: '8-0', epoch: 'e1' }, { ...source, cursorFound: false })).toMatch(/no longer in the source's log/);
    expect(historyChange({ cursor: '12-0', epoch: 'e1' }, { ...source, cursorFound: false })).toMatch(/never wrote the record/);
    expect(historyChange({ cursor: '5-0', epoch: 'e1' }, { ...source, trimmed: 0, cursorFound: false })).toMatch(/none were trimmed/);
  });

  it('resync when records after the cursor were trimmed', () => {
    expect(historyChange({ cursor: '5-0', epoch: 'e1' }, { ...source, cursorFound: false })).toMatch(/trimmed past the cursor 5-0/);
  });
});
