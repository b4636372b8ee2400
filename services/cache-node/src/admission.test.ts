import { nativeChunkId } from '@ferry/core';
import { InFlightBudget } from '@ferry/runtime';
import { describe, expect, it } from 'vitest';
import { ChunkAdmission } from './admission.js';

const id = (n: number) => nativeChunkId(n.toString(16).padStart(64, '0'));

describe('ChunkAdmission', () => {
  it('counts a chunk once however many requests share it, and refuses beyond streams or bytes', () => {
    const a = new ChunkAdmission({ maxStreams: 4, maxBytes: 100 });
    const r1 = a.admit(id(1), 60);
    const r2 = a.admit(id(1), 60);
    expect([a.streams, a.bytes]).toEqual([2, 60]);
    expect(a.admit(id(2), 60)).toBeUndefined();
    const r3 = a.admit(id(3), 40);
    expect(a.bytes).toBe(100);
    expect(a.admit(id(4), undefined)).toBeDefined();
    expect(a.admit(id(1), 60)).toBeUndefined();
    r1?.();
    r1?.();
    expect([a.streams, a.bytes]).toEqual([3, 100]);
    r2?.();
    r3?.();
    expect(a.bytes).toBe(0);
    expect(a.admit(id(5), 500)).toBeDefined();
    expect(a.bytes).toBe(100);
  });

  it('adds the bytes a later request of a held chunk brings', () => {
    const a = new ChunkAdmission({ maxStreams: 4, maxBytes: 100 });
    a.admit(id(1), undefined);
    a.admit(id(1), 30);
    expect(a.bytes).toBe(30);
  });
});

describe('InFlightBudget', () => {
  it('leases streams and bytes, caps a lease at the whole budget, and releases once', () => {
    const b = new InFlightBudget({ maxStreams: 2, maxBytes: 100 });
    const l1 = b.tryAcquire(70);
    expect(b.tryAcquire(40)).toBeUndefined();
    const l2 = b.tryAcquire(30);
    expect(b.tryAcquire(0)).toBeUndefined();
    l1?.release();
    l1?.release();
    expect([b.streams, b.bytes]).toEqual([1, 30]);
    l2?.release();
    expect(b.tryAcquire(1_000)?.bytes).toBe(100);
  });
});
