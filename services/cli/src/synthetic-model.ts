import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SyntheticModel {
  dir: string;
  files: Array<{ name: string; size: number }>;
  bytes: number;
}

/**
 * A small model folder shaped like a real one: safetensors shards with valid headers, an index
 * mapping tensors to shards, and a config. Shard payloads are random (incompressible, no
 * accidental dedupe). Files already there with the right size are kept, so reruns are cheap.
 */
export async function writeSyntheticModel(dir: string, options: { shards: number; shardBytes: number }): Promise<SyntheticModel> {
  await mkdir(dir, { recursive: true });
  const files: SyntheticModel['files'] = [];
  const weightMap: Record<string, string> = {};
  for (let s = 1; s <= options.shards; s++) {
    const name = `model-${String(s).padStart(5, '0')}-of-${String(options.shards).padStart(5, '0')}.safetensors`;
    const tensors = 4;
    const tensorBytes = Math.floor(options.shardBytes / tensors / 2) * 2;
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    for (let t = 0; t < tensors; t++) {
      const tensor = `model.layers.${(s - 1) * tensors + t}.weight`;
      header[tensor] = { dtype: 'F16', shape: [tensorBytes / 2 / 64, 64], data_offsets: [t * tensorBytes, (t + 1) * tensorBytes] };
      weightMap[tensor] = name;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const size = 8 + json.length + tensors * tensorBytes;
    files.push({ name, size });
    const path = join(dir, name);
    if ((await stat(path).catch(() => undefined))?.size === size) continue;
    const handle = await open(path, 'w');
    try {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(json.length));
      await handle.write(Buffer.concat([prefix, Buffer.from(json)]));
      for (let left = tensors * tensorBytes; left > 0; ) {
        const block = randomBytes(Math.min(left, 4 << 20));
        await handle.write(block);
        left -= block.length;
      }
    } finally {
      await handle.close();
    }
  }
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2);
  const config = JSON.stringify(
    {
      architectures: ['FerryDemoForCausalLM'],
      hidden_size: 64,
      num_hidden_layers: options.shards * 4,
      torch_dtype: 'float16',
      demo_id: createHash('sha256').update(index).digest('hex').slice(0, 8),
    },
    null,
    2,
  );
  await writeFile(join(dir, 'model.safetensors.index.json'), index);
  await writeFile(join(dir, 'config.json'), config);
  files.push(
    { name: 'model.safetensors.index.json', size: Buffer.byteLength(index) },
    { name: 'config.json', size: Buffer.byteLength(config) },
  );
  return { dir, files, bytes: files.reduce((sum, f) => sum + f.size, 0) };
}
