import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, LocalIoError, messageOf, regionConfig } from '@ferry/core';
import { formatRedisAcl, type RedisAclFormat, redisAclUsers } from '@ferry/meta';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface RedisAclCommandOptions {
  region: string;
  format: string;
  /** Directory of the users' passwords, a file each named after the user. */
  secrets: string;
}

const FORMATS: readonly RedisAclFormat[] = ['acl-file', 'commands'];

/**
 * `ferry redis-acl`: the Redis users of a region, one per role, as ACL file lines or ACL SETUSER
 * commands. Each user's password is the content of `<secrets>/<user>`, made (random, mode 0600)
 * when the file does not exist yet, so the same directory serves as the source of the processes'
 * `${file:…}` passwords; the rules carry only its SHA-256.
 */
export async function redisAclCommand(ctx: Context, out: Output, opts: RedisAclCommandOptions): Promise<void> {
  const format = opts.format as RedisAclFormat;
  if (!FORMATS.includes(format))
    throw new InvalidArgumentError(`invalid --format ${JSON.stringify(opts.format)}: expected ${FORMATS.join(' or ')}`);
  regionConfig(ctx.config, opts.region);
  const source = opts.region === ctx.config.source;
  const mirrors = Object.keys(ctx.config.regions).filter((r) => r !== ctx.config.source);
  const users = redisAclUsers({ volume: ctx.config.volume, region: opts.region, source, mirrors });
  const passwords = new Map<string, string>();
  const made: string[] = [];
  await mkdir(opts.secrets, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw new LocalIoError(`cannot create --secrets directory ${opts.secrets}: ${messageOf(err)}`, { cause: err });
  });
  for (const user of users) {
    const file = join(opts.secrets, user.name);
    let password = await readFile(file, 'utf8').then(
      (text) => text.replace(/\r?\n$/, ''),
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw new LocalIoError(`cannot read the password of ${user.name} from ${file}: ${messageOf(err)}`, { cause: err });
      },
    );
    if (password === undefined) {
      password = randomBytes(24).toString('base64url');
      await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' }).catch((err: unknown) => {
        throw new LocalIoError(`cannot write the password of ${user.name} to ${file}: ${messageOf(err)}`, { cause: err });
      });
      made.push(user.name);
    }
    if (password.length < 16) throw new InvalidArgumentError(`the password of ${user.name} in ${file} is shorter than 16 characters`);
    passwords.set(user.name, password);
  }
  const text = formatRedisAcl(users, passwords, format);
  if (out.json) {
    out.result(
      { region: opts.region, format, users: users.map(({ name, role, who, rules }) => ({ name, role, who, rules })), made, text },
      [],
    );
    return;
  }
  process.stdout.write(text);
  for (const name of made) process.stderr.write(`ferry: made a password for ${name} in ${join(opts.secrets, name)}\n`);
}
