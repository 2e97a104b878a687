// A task's history, kept per playbook in .agent/tasks/<id>.json: the
// conversation sent to the model and the chat items shown to the user.
import { promises as fs } from 'node:fs';
import { AGENT_DIR, Folder } from './folder';
import type { ChatMessage } from './llm';
import type { Item, Mode } from './protocol';

export const TASK_DIR = `${AGENT_DIR}/tasks`;

export interface TaskRecord {
  version: 1;
  id: string;
  title: string;
  createdAt: string;
  updatedAt: string;
  mode: Mode;
  messages: ChatMessage[];
  items: Item[];
}

export function newTaskId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return `${stamp}-${Math.random().toString(36).slice(2, 8)}`;
}

export function newTask(now: Date = new Date()): TaskRecord {
  const at = now.toISOString();
  return { version: 1, id: newTaskId(now), title: '', createdAt: at, updatedAt: at, mode: 'plan', messages: [], items: [] };
}

const ID_RE = /^[A-Za-z0-9_-]{1,100}$/;

export class TaskStore {
  constructor(private readonly folder: Folder) {}

  async save(task: TaskRecord): Promise<void> {
    if (!ID_RE.test(task.id)) throw new Error(`bad task id ${task.id}`);
    await this.folder.write(`${TASK_DIR}/${task.id}.json`, JSON.stringify(task) + '\n');
  }

  async load(id: string): Promise<TaskRecord | undefined> {
    if (!ID_RE.test(id)) return undefined;
    try {
      const t = JSON.parse(await this.folder.readText(`${TASK_DIR}/${id}.json`)) as TaskRecord;
      return isTask(t) ? t : undefined;
    } catch {
      return undefined;
    }
  }

  /** The tasks, most recently updated first (damaged files are left out). */
  async list(): Promise<TaskRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(await this.folder.resolve(TASK_DIR));
    } catch {
      return [];
    }
    const tasks: TaskRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const t = await this.load(name.slice(0, -'.json'.length));
      if (t) tasks.push(t);
    }
    return tasks.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0));
  }

  async latest(): Promise<TaskRecord | undefined> {
    return (await this.list())[0];
  }
}

function isTask(t: unknown): t is TaskRecord {
  const r = t as TaskRecord;
  return typeof r === 'object' && r !== null && typeof r.id === 'string' && Array.isArray(r.messages) && Array.isArray(r.items) &&
    (r.mode === 'plan' || r.mode === 'act');
}
