import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountAt } from '@ferry/mount';
import type { Replicator } from '@ferry/replicator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detachAll, type RunningMount, sh, startMount } from '../support/mounts.js';
import { createRegions, MiB, putBytes, type Regions, waitFor, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

/*
 * `ferry mount` of a mirror region's model folder, read with the tools people and model servers
 * use: sha256sum, ls -l, stat, find, cp -r, a safetensors header parsed through mmap by a
 * stdlib-only Python script; writes refused; changes at the source show up in the mount.
 */

const MODEL = '/models/tiny-llm';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A safetensors file: 8-byte little-endian header length, JSON header, then the tensors' bytes. */
function safetensors(tensors: Record<string, { shape: number[]; bytes: Buffer }>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...Object.values(tensors).map((t) => t.bytes)]);
}

/** Parses the header through mmap (as safetensors' safe_open does) and prints one tensor's digest. */
const PYTHON_READER = `
import hashlib, json, mmap, struct, sys
path, name = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (n,) = struct.unpack("<Q", m[:8])
    header = json.loads(m[8:8 + n])
    t = header[name]
    start, end = t["data_offsets"]
    data = m[8 + n + start:8 + n + end]
    print(json.dumps({"dtype": t["dtype"], "shape": t["shape"], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    m.close()
`;

describe('ferry mount of a mirror region', () => {
  let regions: Regions;
  let replicator: Replicator;
  let mount: RunningMount;
  let mnt: string;
  const files = new Map<string, Buffer>();
  const tensors = {
    'embed.weight': { shape: [256, 1024], bytes: randomBytes(256 * 1024 * 4) },
    'layers.0.weight': { shape: [1024, 768], bytes: randomBytes(1024 * 768 * 4) },
    'lm_head.weight': { shape: [64, 1024], bytes: randomBytes(64 * 1024 * 4) },
  };

  beforeAll(async () => {
    regions = await createRegions({ chunkSize: MiB });
    files.set(`${MODEL}/config.json`, Buffer.from('{"architectures":["TinyLlm"]}\n'));
    files.set(`${MODEL}/model-00001-of-00002.safetensors`, safetensors(tensors));
    files.set(`${MODEL}/model-00002-of-00002.safetensors`, randomBytes(5 * MiB + 17));
    files.set(`${MODEL}/tokenizer/vocab.txt`, randomBytes(3000));
    files.set(`${MODEL}/empty.bin`, Buffer.alloc(0));
    await putBytes(regions, Object.fromEntries(files));
    replicator = await startReplicator(regions, 'eu');
    await waitForConvergence(regions, 'eu', 60_000);
    mnt = join(regions.dir, 'mnt');
    mount = await startMount({ config: regions.configPath, region: 'eu', mountpoint: mnt, args: ['--path', '/models'] });
  });

  afterAll(async () => {
    await mount?.stop();
    detachAll();
    await replicator?.stop();
    await regions?.close();
  });

  const local = (path: string) => join(mnt, path.slice('/models/'.length));

  it('serves every file byte for byte: sha256sum of each equals the source', () => {
    const paths = [...files.keys()];
    const result = sh(`sha256sum ${paths.map((p) => `'${local(p)}'`).join(' ')}`);
    expect(result.stderr).toBe('');
    const got = Object.fromEntries(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(/\s+/).reverse()),
    );
    expect(got).toEqual(Object.fromEntries(paths.map((p) => [local(p), sha(files.get(p) as Buffer)])));
  });

  it.skipIf(process.getuid?.() !== 0)('reads ahead at least a chunk and 8 MiB, not the kernel default of 128 KiB (root)', async () => {
    const device = (await mountAt(mnt))?.device;
    expect(device).toMatch(/^\d+:\d+$/);
    const kb = Number((await readFile(`/sys/class/bdi/${device}/read_ahead_kb`, 'utf8')).trim());
    expect(kb).toBe(8192);
  });

  it('ls -l, stat and find show the tree as read-only files and directories', () => {
    const ls = sh(`ls -l '${local(MODEL)}'`);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^-r--r--r-- 1 \S+ \S+ +30 .* config\.json$/m);
    expect(ls.stdout).toMatch(new RegExp(`^-r--r--r-- 1 \\S+ \\S+ +${5 * MiB + 17} .* model-00002-of-00002\\.safetensors$`, 'm'));
    expect(ls.stdout).toMatch(/^dr-xr-xr-x \d+ \S+ \S+ +\d+ .* tokenizer$/m);

    const st = sh(`stat -c '%s %a %F' '${local(`${MODEL}/tokenizer/vocab.txt`)}' '${local(`${MODEL}/tokenizer`)}'`);
    expect(st.stdout.trim().split('\n')).toEqual(['3000 444 regular file', `4096 555 directory`]);

    const find = sh(`cd '${mnt}' && find . -type f | sort`);
    expect(find.stdout.trim().split('\n')).toEqual(
      [...files.keys()].map((p) => `./${p.slice('/models/'.length)}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    const missing = sh(`stat '${local(`${MODEL}/nope.bin`)}'`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('No such file or directory');
  });

  it('cp -r copies the model folder out, identical', () => {
    const out = join(regions.dir, 'copied');
    const cp = sh(`cp -r '${local(MODEL)}' '${out}'`);
    expect(cp.code, cp.stderr).toBe(0);
    const sums = sh(`cd '${out}' && find . -type f -exec sha256sum {} + | sort -k2`);
    const expected = [...files.entries()]
      .map(([p, b]) => `${sha(b)}  ./${p.slice(`${MODEL}/`.length)}`)
      .sort((a, b) => (a.split('  ')[1] as string).localeCompare(b.split('  ')[1] as string));
    expect(sums.stdout.trim().split('\n').sort()).toEqual(expected.sort());
  });

  it('refuses every change with "Read-only file system"', () => {
    const config = local(`${MODEL}/config.json`);
    const attempts = [
      `echo x > '${local(`${MODEL}/new.txt`)}'`,
      `echo x >> '${config}'`,
      `touch '${config}'`,
      `mkdir '${local(`${MODEL}/dir`)}'`,
      `rm '${config}'`,
      `mv '${config}' '${local(`${MODEL}/moved.json`)}'`,
      `chmod 600 '${config}'`,
      `truncate -s 0 '${config}'`,
    ];
    for (const command of attempts) {
      const result = sh(command);
      expect(result.code, command).not.toBe(0);
      expect(result.stderr, command).toContain('Read-only file system');
    }
    expect(sh(`cat '${config}'`).stdout).toBe('{"architectures":["TinyLlm"]}\n');
  });

  it('a stdlib-only Python script parses the safetensors header through mmap and reads one tensor', async () => {
    const script = join(regions.dir, 'read_tensor.py');
    await writeFile(script, PYTHON_READER);
    const result = sh(`python3 '${script}' '${local(`${MODEL}/model-00001-of-00002.safetensors`)}' layers.0.weight`);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({
      dtype: 'F32',
      shape: [1024, 768],
      bytes: 1024 * 768 * 4,
      sha256: sha(tensors['layers.0.weight'].bytes),
    });
  });

  it('shows a new file, a rename and a delete at the source once the mirror applied them', async () => {
    await putBytes(regions, { [`${MODEL}/added.json`]: Buffer.from('{"added":true}') });
    await waitFor(() => sh(`cat '${local(`${MODEL}/added.json`)}'`).stdout === '{"added":true}', 15_000, 'the new file in the mount');
    await regions.source.meta.rename(`${MODEL}/added.json`, `${MODEL}/renamed.json`);
    await waitFor(() => sh(`ls '${local(MODEL)}'`).stdout.includes('renamed.json'), 15_000, 'the rename in the mount');
    expect(sh(`ls '${local(MODEL)}'`).stdout).not.toContain('added.json');
    await regions.source.meta.delete(`${MODEL}/renamed.json`);
    await waitFor(() => sh(`stat '${local(`${MODEL}/renamed.json`)}'`).code !== 0, 15_000, 'the delete in the mount');
  });
});
