import { describe, expect, it } from 'vitest';
import { dirPrefix, isWithin, joinPath, normalizePath, parentPath } from './paths.js';

describe('normalizePath', () => {
  it.each([
    ['/models/llama/config.json', '/models/llama/config.json'],
    ['models/llama', '/models/llama'],
    ['/models/', '/models'],
    ['/', '/'],
    ['/a b/ümlaut/モデル', '/a b/ümlaut/モデル'],
  ])('accepts %j as %j', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });

  it.each([
    ['', 'invalid path "": path is empty'],
    ['/a//b', 'invalid path "/a//b": empty segment ("//")'],
    ['/a/./b', 'invalid path "/a/./b": "." segment'],
    ['/a/../b', 'invalid path "/a/../b": ".." segment'],
    ['..', 'invalid path "..": ".." segment'],
    ['/a\0b', 'invalid path "/a\\u0000b": contains a NUL byte'],
    ['/a\nb', 'invalid path "/a\\nb": contains a control character'],
    ['/a\\b', 'invalid path "/a\\\\b": contains a backslash; use "/"'],
  ])('rejects %j with a precise message', (input, message) => {
    expect(() => normalizePath(input)).toThrow(message);
    try {
      normalizePath(input);
    } catch (err) {
      expect((err as { code: string }).code).toBe('INVALID_PATH');
    }
  });

  it('rejects paths over 1024 bytes, counting UTF-8 bytes', () => {
    expect(normalizePath(`/${'a'.repeat(1023)}`)).toHaveLength(1024);
    expect(() => normalizePath(`/${'a'.repeat(1024)}`)).toThrow(/1025 bytes, longer than 1024/);
    expect(() => normalizePath(`/${'é'.repeat(512)}`)).toThrow(/1025 bytes/);
  });
});

describe('path helpers', () => {
  it('join, parent, prefix, within', () => {
    expect(joinPath('/', 'a/b')).toBe('/a/b');
    expect(joinPath('/m', 'x')).toBe('/m/x');
    expect(() => joinPath('/m', '../x')).toThrow(/".." segment/);
    expect(parentPath('/a/b')).toBe('/a');
    expect(parentPath('/a')).toBe('/');
    expect(dirPrefix('/')).toBe('/');
    expect(dirPrefix('/a')).toBe('/a/');
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/a', '/a')).toBe(true);
  });
});
