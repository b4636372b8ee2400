import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * What the docs show a person: the `ferry …` command lines (in code blocks and inline code) and
 * the ferry.yaml examples, from README.md, docs/*.md and every package's and service's README,
 * each with the file and line it came from.
 */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Where {
  file: string;
  line: number;
}

export interface CommandLine extends Where {
  /** The command as written (comment and `$ ` prompt removed). */
  text: string;
  /** Words, with optional `[…]` groups taken in. */
  args: string[];
  /** Words without the optional groups: the smallest form of the line. */
  minimal: string[];
  /** Holds a placeholder (`…`, `<name>`): only its command and flags can be checked. */
  placeholder: boolean;
}

export interface ConfigExample extends Where {
  text: string;
}

/** Markdown files a person reads: the README, docs/, and each package's and service's README. */
export function docFiles(): string[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  for (const group of ['packages', 'services']) {
    for (const name of readdirSync(join(ROOT, group)).sort()) {
      try {
        readFileSync(join(ROOT, group, name, 'README.md'));
        files.push(`${group}/${name}/README.md`);
      } catch {
        // a package without a README is lint's to find
      }
    }
  }
  return files;
}

interface Block extends Where {
  lang: string;
  lines: string[];
}

/** Fenced code blocks, and the prose outside them (code spans joined across line breaks). */
function split(file: string): { blocks: Block[]; prose: Array<{ line: number; text: string }> } {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  const prose: Array<{ line: number; text: string }> = [];
  let open: Block | undefined;
  lines.forEach((text, i) => {
    const fence = /^\s*```(\w*)/.exec(text);
    if (fence && !open) open = { file, line: i + 2, lang: fence[1] ?? '', lines: [] };
    else if (fence && open) {
      blocks.push(open);
      open = undefined;
    } else if (open) open.lines.push(text);
    else prose.push({ line: i + 1, text });
  });
  return { blocks, prose };
}

/** Shell-like words: quotes kept together (and removed), `#` starts a comment. */
export function words(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const word = m[1] ?? m[2] ?? (m[3] as string);
    if (m[3]?.startsWith('#')) break;
    out.push(word);
  }
  return out;
}

function commandLine(where: Where, text: string, partial = false): CommandLine | undefined {
  const cleaned = text.replace(/^\s*\$\s+/, '').trim();
  if (!/^ferry(\s|$)/.test(cleaned)) return undefined;
  const all = words(cleaned);
  const args = all.flatMap((w) => w.replace(/[[\]]/g, '')).filter((w) => w !== '' && w !== '|');
  const minimal: string[] = [];
  let depth = 0;
  for (const w of all) {
    const opens = (w.match(/\[/g) ?? []).length;
    const closes = (w.match(/]/g) ?? []).length;
    if (depth === 0 && opens === 0) minimal.push(w);
    depth += opens - closes;
  }
  return {
    ...where,
    text: cleaned,
    args: args.slice(1),
    minimal: minimal.slice(1),
    placeholder: partial || /…|\.\.\.|<[^>]+>/.test(cleaned),
  };
}

/** Every `ferry …` line in a code block, and every `ferry …` inline code span in the prose. */
export function commandLines(files = docFiles()): CommandLine[] {
  const found: CommandLine[] = [];
  for (const file of files) {
    const { blocks, prose } = split(file);
    for (const block of blocks) {
      if (!['', 'sh', 'bash', 'shell', 'console'].includes(block.lang)) continue;
      block.lines.forEach((text, i) => {
        const code = text.replace(/\s+#.*$/, '');
        // `a ; b` is two commands.
        for (const part of code.split(/\s;\s|\s&&\s/)) {
          const line = commandLine({ file, line: block.line + i }, part);
          if (line) found.push(line);
        }
      });
    }
    // Inline code may wrap across lines: join each paragraph first.
    let paragraph: Array<{ line: number; text: string }> = [];
    const flush = () => {
      const text = paragraph.map((p) => p.text.trim()).join(' ');
      // Prose names a command and its flags, rarely whole lines: those are what it is checked for.
      for (const m of text.matchAll(/`(ferry [^`]+)`/g)) {
        const [command, ...rest] = (m[1] as string).slice('ferry '.length).split(' ');
        // `ferry get/cat` names two commands.
        for (const name of (command as string).split('/')) {
          const line = commandLine({ file, line: paragraph[0]?.line ?? 0 }, ['ferry', name, ...rest].join(' '), true);
          if (line) found.push(line);
        }
      }
      paragraph = [];
    };
    for (const p of prose) {
      if (p.text.trim() === '') flush();
      else paragraph.push(p);
    }
    flush();
  }
  return found;
}

/** Every YAML block that is (part of) a ferry.yaml: its top-level keys are config keys. */
export function configExamples(topLevelKeys: ReadonlySet<string>, files = docFiles()): ConfigExample[] {
  const found: ConfigExample[] = [];
  for (const file of files) {
    for (const block of split(file).blocks) {
      if (block.lang !== 'yaml' && block.lang !== 'yml') continue;
      const keys = block.lines.flatMap((l) => /^([A-Za-z]\w*):/.exec(l)?.[1] ?? []);
      if (keys.length > 0 && keys.every((k) => topLevelKeys.has(k))) found.push({ file, line: block.line, text: block.lines.join('\n') });
    }
  }
  return found;
}

export interface DefaultRow extends Where {
  /** The config key with `<r>` / `R` for the region. */
  key: string;
  documented: string;
}

/**
 * The rows of the README's config reference: `| \`key\` | \`default\` | … |` (two keys or two
 * defaults joined by " / "), and the `name` (default) pairs of the credentials table's limit rows.
 */
export function documentedDefaults(file = 'README.md'): DefaultRow[] {
  const rows: DefaultRow[] = [];
  readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .forEach((text, i) => {
      const cells = text.split('|').map((c) => c.trim());
      if (cells.length < 4 || !cells[1]?.startsWith('`')) return;
      const keys = [...(cells[1] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
      const defaults = [...(cells[2] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
      if (keys.length > 0 && keys.length === defaults.length && cells.length === 5) {
        for (const [k, key] of keys.entries()) rows.push({ file, line: i + 1, key, documented: defaults[k] as string });
      }
      // `regions.R.cache.limits` | node limits: `headersTimeout` (10s), …
      if (keys.length === 1 && /\.limits$/.test(keys[0] as string)) {
        for (const m of (cells[2] as string).matchAll(/`([a-z]\w*)` \((\d[^) ]*)/g)) {
          rows.push({ file, line: i + 1, key: `${keys[0]}.${m[1]}`, documented: m[2] as string });
        }
      }
    });
  return rows;
}
