// The playbook folder on disk, and the rules for paths the model may name.
// No vscode import: the extension passes the workspace folder's path.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** The agent's own state folder inside the playbook folder; Save skips it. */
export const AGENT_DIR = '.agent';

/** Folders never listed, snapshotted or restored. */
const IGNORED_DIRS = new Set([AGENT_DIR, '.git', '__pycache__', 'node_modules', '.venv', '.mypy_cache', '.pytest_cache']);

export type PathCheck = { ok: true; path: string } | { ok: false; error: string };

/**
 * Checks a path the model (or the webview) names: relative to the playbook
 * folder, without `..`, not absolute, not inside `.agent/`. Returns the
 * normalized slash-separated form.
 */
export function checkToolPath(input: unknown, opts: { allowRoot?: boolean } = {}): PathCheck {
  if (typeof input !== 'string') return { ok: false, error: 'the path must be a string' };
  const raw = input.trim();
  if (raw.includes('\0')) return { ok: false, error: 'the path contains a NUL character' };
  if (raw.length > 1024) return { ok: false, error: 'the path is too long' };
  if (raw.startsWith('/') || raw.startsWith('\\') || /^[A-Za-z]:/.test(raw) || raw.startsWith('~')) {
    return { ok: false, error: `"${raw}" is absolute; use a path relative to the playbook folder, like "playbook.py"` };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) return { ok: false, error: `"${raw}" is a URL, not a file of the playbook folder` };
  const parts = raw.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) return { ok: false, error: `"${raw}" leaves the playbook folder ("..") ; only files inside it can be used` };
  if (parts.length > 0 && parts[0].toLowerCase() === AGENT_DIR) {
    return { ok: false, error: `"${raw}" is inside ${AGENT_DIR}/, the agent's own state folder, which tools may not touch` };
  }
  if (parts.length === 0 && !opts.allowRoot) return { ok: false, error: 'the path is empty; name a file, like "playbook.py"' };
  return { ok: true, path: parts.join('/') };
}

export interface FileEntry {
  path: string;
  size: number;
}

/** File operations on one folder; every path is relative and stays inside it (symbolic links included). */
export class Folder {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** The absolute path for a relative one, refusing anything that escapes the folder. */
  async resolve(rel: string): Promise<string> {
    const parts = rel.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.');
    if (parts.includes('..') || path.isAbsolute(rel)) throw new Error(`"${rel}" is outside the playbook folder`);
    const abs = path.join(this.root, ...parts);
    // Follow symbolic links of the part that exists: it must stay inside the folder.
    const realRoot = await fs.realpath(this.root).catch(() => this.root);
    let probe = abs;
    for (;;) {
      try {
        const real = await fs.realpath(probe);
        if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
          throw new Error(`"${rel}" leads outside the playbook folder (a symbolic link)`);
        }
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        const parent = path.dirname(probe);
        if (parent === probe || probe === this.root) break;
        probe = parent;
      }
    }
    return abs;
  }

  async exists(rel: string): Promise<boolean> {
    try {
      await fs.stat(await this.resolve(rel));
      return true;
    } catch {
      return false;
    }
  }

  async readText(rel: string): Promise<string> {
    return fs.readFile(await this.resolve(rel), 'utf8');
  }

  async readBytes(rel: string): Promise<Buffer> {
    return fs.readFile(await this.resolve(rel));
  }

  /** Writes a file, creating its folders; through a temporary file so a crash never leaves half a file. */
  async write(rel: string, content: string | Buffer): Promise<void> {
    const abs = await this.resolve(rel);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${process.pid}.${Date.now()}.tmp`;
    await fs.writeFile(tmp, content);
    try {
      await fs.rename(tmp, abs);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async remove(rel: string): Promise<void> {
    await fs.rm(await this.resolve(rel), { force: true, recursive: true });
  }

  /**
   * The folder's files (slash-separated, sorted), leaving out .agent/, .git/,
   * caches and symbolic links. `under` limits the listing to a subfolder.
   */
  async list(under = '', opts: { recursive?: boolean; limit?: number } = {}): Promise<{ files: FileEntry[]; dirs: string[]; truncated: boolean }> {
    const recursive = opts.recursive ?? true;
    const limit = opts.limit ?? 10_000;
    const files: FileEntry[] = [];
    const dirs: string[] = [];
    let truncated = false;
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(rel ? await this.resolve(rel) : this.root, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (files.length >= limit) {
          truncated = true;
          return;
        }
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (IGNORED_DIRS.has(e.name)) continue;
          dirs.push(p);
          if (recursive) await walk(p);
        } else if (e.isFile()) {
          if (e.name.endsWith('.pyc') || /\.\d+\.\d+\.tmp$/.test(e.name)) continue;
          const st = await fs.stat(path.join(this.root, ...p.split('/')));
          files.push({ path: p, size: st.size });
        }
      }
    };
    await walk(under);
    return { files, dirs, truncated };
  }
}
