import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM files of a private CA and of a server certificate it signed, for 127.0.0.1 and localhost (also good as a client's). */
export interface TestCertificates {
  /** The CA certificate clients trust (`tls.ca`, `--ca-bundle`). */
  ca: string;
  cert: string;
  key: string;
  /** A second server pair from the same CA (for a reload). */
  renewed: { cert: string; key: string };
}

/** `openssl req` with a new P-256 key written to `key` and its output (a request, or with -x509 a certificate) to `out`. */
function newKey(first: string[], key: string, out: string, rest: string[]) {
  return run('openssl', [
    'req',
    ...first,
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    out,
    ...rest,
  ]);
}

async function serverPair(dir: string, name: string, ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  // clientAuth too: a redis-server presents its certificate on the links it opens (cluster bus,
  // replication), and a Redis client can present the same pair as its own.
  await writeFile(ext, 'subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth, clientAuth\n');
  await newKey(['-new'], key, csr, ['-subj', `/CN=${name}`]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    cert,
    '-extfile',
    ext,
  ]);
  return { cert, key };
}

/** Make a CA and two server certificates with the `openssl` binary under `dir`. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
  await newKey(['-x509'], ca.key, ca.cert, ['-days', '2', '-subj', '/CN=Ferry test CA']);
  const server = await serverPair(dir, 'server', ca);
  const renewed = await serverPair(dir, 'renewed', ca);
  return { ca: ca.cert, ...server, renewed };
}
