import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/*
 * Reading the Kubernetes manifests under deploy/kubernetes for the deployment tests: YAML
 * documents with where they came from, offline schema validation with kubernetes-models, the
 * kustomize build when a kubectl is on the PATH, and the `ferry` command lines of containers.
 */

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const KUBE_DIR = join(REPO, 'deploy/kubernetes');

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface LoadedDoc {
  /** Path relative to the repository, and the document's index in the file. */
  where: string;
  object: KubeObject;
}

export function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

/** Every document of a YAML stream (parse errors fail), skipping empty ones. */
export function parseStream(text: string, where: string): LoadedDoc[] {
  return parseAllDocuments(text).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${where}#${i}: ${doc.errors[0]?.message}`);
    const object = doc.toJS({ maxAliasCount: 100 }) as KubeObject | null;
    return object === null ? [] : [{ where: `${where}#${i}`, object }];
  });
}

export function loadFile(path: string): LoadedDoc[] {
  return parseStream(readFileSync(path, 'utf8'), relative(REPO, path));
}

/** The kubernetes-models module that holds the kinds of an apiVersion. */
function modelModule(apiVersion: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

/** Construct the object with its model and validate it against the Kubernetes JSON schema. */
export async function validateObject(object: KubeObject): Promise<void> {
  const mod = (await import(/* @vite-ignore */ modelModule(object.apiVersion))) as Record<
    string,
    new (
      data: unknown,
    ) => { validate(): void }
  >;
  const Model = mod[object.kind];
  if (!Model) throw new Error(`no model for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

/** `kubectl kustomize <dir>` when kubectl is installed; undefined when it is not. */
export function kustomizeBuild(dir: string): LoadedDoc[] | undefined {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) return undefined;
  const built = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (built.status !== 0) throw new Error(`kubectl kustomize ${relative(REPO, dir)} failed: ${built.stderr}`);
  return parseStream(built.stdout, `kustomize(${relative(REPO, dir)})`);
}

/** Files and directories a kustomization names, as absolute paths (all must exist). */
export function kustomizationInputs(path: string, k: Record<string, unknown>): string[] {
  const base = dirname(path);
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const generators = [...list(undefined), ...((k.configMapGenerator ?? []) as unknown[]), ...((k.secretGenerator ?? []) as unknown[])];
  const generatorFiles = generators.flatMap((g) => {
    const gen = g as { files?: string[]; envs?: string[] };
    return [...(gen.files ?? []).map((f) => f.split('=').at(-1) as string), ...(gen.envs ?? [])];
  });
  const patchFiles = ((k.patches ?? []) as Array<{ path?: string }>).flatMap((p) => (p.path ? [p.path] : []));
  return [...list(k.resources), ...list(k.components), ...list(k.configurations), ...generatorFiles, ...patchFiles].map((p) =>
    join(base, p),
  );
}

export function isKustomizationTarget(path: string): boolean {
  if (!existsSync(path)) return false;
  if (!statSync(path).isDirectory()) return true;
  return ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].some((n) => existsSync(join(path, n)));
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
}

export interface FoundContainer {
  where: string;
  owner: string;
  container: Container;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean };
}

interface WorkloadSpec {
  template?: { spec?: PodSpec };
  jobTemplate?: { spec?: { template?: { spec?: PodSpec } } };
}

/** The pod spec of a workload (Deployment, DaemonSet, Job, CronJob, Pod), if it has one. */
export function podSpec(object: KubeObject): PodSpec | undefined {
  const spec = object.spec as (WorkloadSpec & PodSpec) | undefined;
  if (!spec) return undefined;
  if (object.kind === 'Pod') return spec;
  if (object.kind === 'CronJob') return spec.jobTemplate?.spec?.template?.spec;
  return spec.template?.spec;
}

export function containersOf(docs: LoadedDoc[]): FoundContainer[] {
  return docs.flatMap(({ where, object }) => {
    const pod = podSpec(object);
    if (!pod) return [];
    const owner = `${object.kind}/${object.metadata?.name ?? object.metadata?.generateName}`;
    return [...(pod.initContainers ?? []), ...pod.containers].map((container) => ({ where, owner, container }));
  });
}

/** A container running the Ferry image (by name `ferry`, or a repository ending in /ferry). */
export function isFerryImage(image: string): boolean {
  return /^(.*\/)?ferry(:[^/]+)?$/.test(image);
}

/** Sample values for what the cluster fills in: downward API fields and the region ConfigMap. */
export function sampleEnv(container: Container, configMaps: Map<string, Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env[v.name] = v.value;
    const cm = v.valueFrom?.configMapKeyRef;
    if (cm) env[v.name] = configMaps.get(cm.name)?.[cm.key] ?? configMaps.get('*')?.[cm.key] ?? 'sample';
    const field = v.valueFrom?.fieldRef?.fieldPath;
    if (field) env[v.name] = field === 'status.podIP' ? '10.1.2.3' : 'gpu-node-1';
  }
  return env;
}

/** Kubernetes' own expansion of command and args: `$(NAME)` from the env, `$$` for a literal `$`. */
export function kubeExpand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name?: string) => {
    if (m === '$$') return '$';
    return name !== undefined && name in env ? (env[name] as string) : m;
  });
}

/**
 * The words of the `exec ferry …` line a shell wrapper runs: `$VAR`, `"$VAR"` and
 * `"$(cat FILE)"` (files the init step writes) become sample values; double quotes group.
 */
export function shellWords(line: string, env: Record<string, string>, files: Record<string, string>): string[] {
  const expanded = line
    .replace(/\$\(cat ([^)]+)\)/g, (_m, file: string) => {
      const value = files[file.trim()];
      if (value === undefined) throw new Error(`no sample value for $(cat ${file})`);
      return value;
    })
    .replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, name: string) => {
      const value = env[name];
      if (value === undefined) throw new Error(`the shell line uses $${name}, which the container's env does not set`);
      return value;
    });
  return [...expanded.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? (m[2] as string));
}

/** The ferry argv of a container (without `ferry`), or undefined when it runs something else. */
export function ferryArgv(container: Container, env: Record<string, string>, files: Record<string, string>): string[] | undefined {
  const args = (container.args ?? []).map((a) => kubeExpand(a, env));
  const command = container.command;
  if (!command) return args;
  const cmd = command.join(' ');
  if (/^(\/usr\/bin\/)?tini -- sh -c$/.test(cmd)) {
    const words = shellWords(args[0] ?? '', env, files);
    if (words[0] !== 'exec' || words[1] !== 'ferry') throw new Error(`shell wrapper does not exec ferry: ${args[0]}`);
    return words.slice(2);
  }
  if (/^(\/usr\/bin\/)?tini -- ferry$/.test(cmd) || cmd === 'ferry') return args;
  return undefined;
}
