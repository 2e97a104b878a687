// Checkpoints: before each approved write (and before a template or a
// restore), the playbook folder's files (leaving out .agent/) are copied to
// .agent/checkpoints/<n>/, described by .agent/checkpoints/<n>.json.
// Restoring one first takes a checkpoint of the present state, so nothing
// is ever lost.
import { promises as fs } from 'node:fs';
import { AGENT_DIR, Folder } from './folder';

export const CHECKPOINT_DIR = `${AGENT_DIR}/checkpoints`;
/** Files larger than this are not snapshotted (a playbook folder holds text files). */
export const MAX_FILE_BYTES = 2 << 20;
/** A snapshot stops adding files past this total. */
export const MAX_TOTAL_BYTES = 32 << 20;

export interface Checkpoint {
  n: number;
  label: string;
  createdAt: string;
  files: string[];
  /** Files left out (too large, or past the total). */
  skipped: string[];
}

export class Checkpoints {
  constructor(private readonly folder: Folder, private readonly now: () => Date = () => new Date()) {}

  async list(): Promise<Checkpoint[]> {
    const { files } = await this.folderList();
    const out: Checkpoint[] = [];
    for (const f of files) {
      const m = /^(\d+)\.json$/.exec(f);
      if (!m) continue;
      try {
        out.push(JSON.parse(await this.folder.readText(`${CHECKPOINT_DIR}/${f}`)) as Checkpoint);
      } catch {
        // A damaged description: that checkpoint is not offered.
      }
    }
    return out.sort((a, b) => a.n - b.n);
  }

  async get(n: number): Promise<Checkpoint | undefined> {
    if (!Number.isInteger(n) || n < 1) return undefined;
    try {
      return JSON.parse(await this.folder.readText(`${CHECKPOINT_DIR}/${n}.json`)) as Checkpoint;
    } catch {
      return undefined;
    }
  }

  /** Copies the playbook folder's files into a new checkpoint. */
  async create(label: string): Promise<Checkpoint> {
    const existing = await this.list();
    const { dirs } = await this.folderList();
    const used = new Set([...existing.map((c) => c.n), ...dirs.map((d) => Number(d)).filter(Number.isInteger)]);
    let n = Math.max(0, ...used) + 1;
    while (used.has(n)) n++;
    const { files } = await this.folder.list('');
    const cp: Checkpoint = { n, label, createdAt: this.now().toISOString(), files: [], skipped: [] };
    let total = 0;
    for (const f of files) {
      if (f.size > MAX_FILE_BYTES || total + f.size > MAX_TOTAL_BYTES) {
        cp.skipped.push(f.path);
        continue;
      }
      await this.folder.write(`${CHECKPOINT_DIR}/${n}/${f.path}`, await this.folder.readBytes(f.path));
      cp.files.push(f.path);
      total += f.size;
    }
    // The description last: a checkpoint without it was interrupted and is not offered.
    await this.folder.write(`${CHECKPOINT_DIR}/${n}.json`, JSON.stringify(cp, null, 2) + '\n');
    return cp;
  }

  /**
   * Puts the folder back as checkpoint n was: its files are written back,
   * files created since are removed. The present state is first saved as a
   * new checkpoint, returned as `safety`.
   */
  async restore(n: number): Promise<{ restored: Checkpoint; safety: Checkpoint }> {
    const cp = await this.get(n);
    if (!cp) throw new Error(`checkpoint ${n} does not exist`);
    const safety = await this.create(`before restoring checkpoint ${n}`);
    const keep = new Set([...cp.files, ...cp.skipped]);
    const { files } = await this.folder.list('');
    for (const f of files) {
      if (!keep.has(f.path)) await this.folder.remove(f.path);
    }
    for (const f of cp.files) {
      await this.folder.write(f, await this.folder.readBytes(`${CHECKPOINT_DIR}/${n}/${f}`));
    }
    return { restored: cp, safety };
  }

  private async folderList(): Promise<{ files: string[]; dirs: string[] }> {
    // list() leaves out .agent/, so read the checkpoint folder itself.
    try {
      const entries = await fs.readdir(await this.folder.resolve(CHECKPOINT_DIR), { withFileTypes: true });
      return {
        files: entries.filter((e) => e.isFile()).map((e) => e.name),
        dirs: entries.filter((e) => e.isDirectory()).map((e) => e.name),
      };
    } catch {
      return { files: [], dirs: [] };
    }
  }
}
