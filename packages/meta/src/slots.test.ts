import { describe, expect, it } from 'vitest';
import { checkKeySlots, importCheckpointKey, queuePrefix, volumeKeys } from './keys.js';
import { assertOneSlot, hashTag, keySlot } from './slots.js';

describe('Redis Cluster slots', () => {
  it('match what CLUSTER KEYSLOT answers (examples from the Redis docs)', () => {
    expect(keySlot('somekey')).toBe(11058);
    expect(keySlot('foo{hash_tag}')).toBe(2515);
    expect(keySlot('bar{hash_tag}')).toBe(2515);
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('')).toBe(0);
  });

  it('hash only the first non-empty {…}', () => {
    expect(hashTag('{user1000}.following')).toBe('user1000');
    expect(hashTag('foo{}{bar}')).toBe('foo{}{bar}');
    expect(hashTag('foo{{bar}}zap')).toBe('{bar');
    expect(hashTag('foo{bar}{zap}')).toBe('bar');
    expect(hashTag('no-tag')).toBe('no-tag');
  });

  it('every key of a volume, its import checkpoints and its queues are each in one slot', () => {
    expect(() => checkKeySlots('models')).not.toThrow();
    const keys = volumeKeys('models');
    const slot = keySlot(keys.entries);
    for (const key of [...Object.values(keys), importCheckpointKey('models', 'abc')]) expect(keySlot(key)).toBe(slot);
    expect(keySlot(`${queuePrefix('models')}:copy:wait`)).toBe(keySlot(`${queuePrefix('models')}:warm:123`));
  });

  it('a script given keys of two slots is refused before it reaches Redis', () => {
    expect(() => assertOneSlot('script commit', ['ferry:{a}:entries', 'ferry:{b}:paths'])).toThrow(
      /^script commit: keys ferry:\{a\}:entries \(slot \d+\) and ferry:\{b\}:paths \(slot \d+\) are in different Redis Cluster slots$/,
    );
  });
});
