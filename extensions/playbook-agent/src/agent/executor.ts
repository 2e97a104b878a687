// Runs the model's tool calls. The rules hold here, whatever the model
// asks: paths stay inside the playbook folder and out of .agent/; in Plan
// mode every write is refused; in Act mode each write needs the user's
// approval (or the auto-approve setting), and a checkpoint is taken first.
import { addedLines, countLines, lineDiff } from './diff';
import { checkToolPath, Folder } from './folder';
import type { Mode, ProblemLine } from './protocol';
import type { ToolCall } from './stream';
import { TOOL_NAMES, WRITE_TOOLS } from './tools';

export const MAX_WRITE_BYTES = 1 << 20;
export const MAX_READ_CHARS = 100_000;
export const MAX_LIST_ENTRIES = 500;
export const MAX_LINES = 5000;

export interface ValidationReport {
  passed: boolean;
  errors: ProblemLine[];
  warnings: ProblemLine[];
  lines?: number;
}

export interface EditRequest {
  tool: 'write_file' | 'replace_in_file';
  path: string;
  /** One line: what the change is. */
  summary: string;
  /** The change as a line diff. */
  preview: string;
}

export interface Decision {
  approved: boolean;
  /** Set when the auto-approve setting approved it. */
  auto?: boolean;
  /** What the user said when rejecting. */
  feedback?: string;
}

/** What the executor needs from the session and the user. */
export interface ToolHost {
  mode(): Mode;
  approveEdit(req: EditRequest, signal: AbortSignal): Promise<Decision>;
  /** Called after approval, before the file changes: the session takes a checkpoint. */
  beforeWrite(req: EditRequest): Promise<void>;
  afterWrite?(path: string, created: boolean): void;
  validate(signal: AbortSignal): Promise<ValidationReport>;
  ask(question: string, options: string[], signal: AbortSignal): Promise<string>;
  showPlan(plan: string, diagram: string): void;
  requestAct(message: string, signal: AbortSignal): Promise<{ switched: boolean; reply?: string }>;
  complete(result: string): void;
}

export interface ToolOutcome {
  /** The tool message sent back to the model. */
  content: string;
  isError: boolean;
  /** A short line for the chat. */
  title: string;
  status: 'done' | 'error' | 'refused';
  path?: string;
  /** attempt_completion: the loop ends here. */
  finished?: boolean;
  validation?: ValidationReport;
}

class ArgError extends Error {}

type Args = Record<string, unknown>;

export class ToolExecutor {
  constructor(private readonly folder: Folder, private readonly host: ToolHost) {}

  async execute(call: ToolCall, signal: AbortSignal): Promise<ToolOutcome> {
    const name = call.name;
    if (!(TOOL_NAMES as readonly string[]).includes(name)) {
      return fail(`Error: there is no tool named "${name || '(empty)'}". The tools are: ${TOOL_NAMES.join(', ')}.`,
        `Unknown tool ${name || '(empty)'}`);
    }
    // Plan mode: every write is refused before anything else, whatever the arguments.
    if (WRITE_TOOLS.has(name) && this.host.mode() === 'plan') {
      let target: string | undefined;
      try {
        const p = parseArgs(call.arguments).path;
        target = typeof p === 'string' ? p : undefined;
      } catch {
        target = undefined;
      }
      return {
        content: `Error: ${name} is refused in Plan mode: no file may change until the user switches to Act mode. ` +
          'Present your plan with plan_respond, then ask the user to switch with request_act_mode.',
        isError: true,
        title: `Refused in Plan mode: ${name}${target ? ` ${target}` : ''}`,
        status: 'refused',
        path: target,
      };
    }
    let args: Args;
    try {
      args = parseArgs(call.arguments);
    } catch (err) {
      return fail(`Error: the arguments of ${name} are not valid JSON (${(err as Error).message}). ` +
        'Call the tool again with a JSON object as arguments, escaping newlines and quotes inside strings.', `${name}: arguments are not valid JSON`);
    }
    try {
      switch (name as typeof TOOL_NAMES[number]) {
        case 'list_files': return await this.listFiles(args);
        case 'read_file': return await this.readFile(args);
        case 'write_file': return await this.writeFile(args, signal);
        case 'replace_in_file': return await this.replaceInFile(args, signal);
        case 'validate': return await this.validate(signal);
        case 'ask_followup_question': return await this.ask(args, signal);
        case 'plan_respond': return this.planRespond(args);
        case 'request_act_mode': return await this.requestAct(args, signal);
        case 'attempt_completion': return this.complete(args);
      }
    } catch (err) {
      if (err instanceof ArgError) {
        return fail(`Error: ${name}: ${err.message}. Call it again with corrected arguments.`, `${name}: ${err.message}`);
      }
      if (signal.aborted) throw err;
      return fail(`Error: ${name} failed: ${(err as Error).message ?? String(err)}`, `${name} failed`);
    }
    return fail(`Error: ${name} is not available.`, name);
  }

  private async listFiles(args: Args): Promise<ToolOutcome> {
    let under = '';
    if (args.path !== undefined && args.path !== null && args.path !== '' && args.path !== '.') {
      under = confined(args.path);
    }
    const recursive = args.recursive === undefined ? true : bool(args, 'recursive');
    const { files, dirs, truncated } = await this.folder.list(under, { recursive, limit: MAX_LIST_ENTRIES });
    const where = under || 'the playbook folder';
    if (files.length === 0 && dirs.length === 0) {
      return ok(`${where} has no files yet (the agent's state folder .agent/ is not listed).`, `Listed ${where}`);
    }
    const lines = [
      ...dirs.filter(() => !recursive).map((d) => `${d}/`),
      ...files.map((f) => `${f.path} (${f.size} bytes)`),
    ];
    if (truncated) lines.push(`… more files not listed (limit ${MAX_LIST_ENTRIES})`);
    return ok(lines.join('\n'), `Listed ${where} (${files.length} file${files.length === 1 ? '' : 's'})`);
  }

  private async readFile(args: Args): Promise<ToolOutcome> {
    const path = confined(str(args, 'path'));
    let text: string;
    try {
      text = await this.folder.readText(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return fail(`Error: ${path} does not exist. Use list_files to see the folder's files.`, `Read ${path}: no such file`, path);
      if (code === 'EISDIR') return fail(`Error: ${path} is a folder; use list_files.`, `Read ${path}: a folder`, path);
      throw err;
    }
    if (text.length > MAX_READ_CHARS) {
      text = text.slice(0, MAX_READ_CHARS) + `\n[… cut: the file has ${text.length} characters; only the first ${MAX_READ_CHARS} are shown]`;
    }
    return { content: text === '' ? `(${path} is empty)` : text, isError: false, title: `Read ${path}`, status: 'done', path };
  }

  private async writeFile(args: Args, signal: AbortSignal): Promise<ToolOutcome> {
    const path = confined(str(args, 'path'));
    const content = str(args, 'content', { allowEmpty: true });
    if (Buffer.byteLength(content) > MAX_WRITE_BYTES) {
      return fail(`Error: the content for ${path} is larger than ${MAX_WRITE_BYTES} bytes; playbook files are small text files.`, `Write ${path}: too large`, path);
    }
    let before: string | undefined;
    try {
      before = await this.folder.readText(path);
    } catch {
      before = undefined;
    }
    if (before === content) {
      return ok(`${path} already has exactly this content; nothing changed.`, `${path} unchanged`, path);
    }
    const lines = countLines(content);
    const req: EditRequest = {
      tool: 'write_file',
      path,
      summary: before === undefined ? `Create ${path} (${lines} lines)` : `Rewrite ${path} (${lines} lines)`,
      preview: before === undefined ? addedLines(content) : lineDiff(before, content),
    };
    const decision = await this.host.approveEdit(req, signal);
    if (!decision.approved) return rejected(path, decision);
    await this.host.beforeWrite(req);
    await this.folder.write(path, content);
    this.host.afterWrite?.(path, before === undefined);
    const notes = fileNotes(path, content);
    return ok(`${before === undefined ? 'Created' : 'Wrote'} ${path} (${lines} lines).${notes}`,
      `${before === undefined ? 'Created' : 'Wrote'} ${path}`, path);
  }

  private async replaceInFile(args: Args, signal: AbortSignal): Promise<ToolOutcome> {
    const path = confined(str(args, 'path'));
    const search = str(args, 'search');
    const replace = str(args, 'replace', { allowEmpty: true });
    let before: string;
    try {
      before = await this.folder.readText(path);
    } catch {
      return fail(`Error: ${path} does not exist; create it with write_file.`, `Edit ${path}: no such file`, path);
    }
    const count = occurrences(before, search);
    if (count === 0) {
      return fail(`Error: the search text was not found in ${path}. It must match exactly, whitespace and indentation included; ` +
        'read the file again with read_file and copy the lines exactly.', `Edit ${path}: search text not found`, path);
    }
    if (count > 1) {
      return fail(`Error: the search text occurs ${count} times in ${path}; include more surrounding lines so that it matches exactly once.`,
        `Edit ${path}: search text not unique`, path);
    }
    const at = before.indexOf(search);
    const after = before.slice(0, at) + replace + before.slice(at + search.length);
    if (Buffer.byteLength(after) > MAX_WRITE_BYTES) {
      return fail(`Error: ${path} would be larger than ${MAX_WRITE_BYTES} bytes.`, `Edit ${path}: too large`, path);
    }
    const req: EditRequest = { tool: 'replace_in_file', path, summary: `Edit ${path}`, preview: lineDiff(before, after) };
    const decision = await this.host.approveEdit(req, signal);
    if (!decision.approved) return rejected(path, decision);
    await this.host.beforeWrite(req);
    await this.folder.write(path, after);
    this.host.afterWrite?.(path, false);
    return ok(`Edited ${path}: replaced ${countLines(search)} line(s) with ${countLines(replace)} line(s); it now has ${countLines(after)} lines.${fileNotes(path, after)}`,
      `Edited ${path}`, path);
  }

  private async validate(signal: AbortSignal): Promise<ToolOutcome> {
    const report = await this.host.validate(signal);
    const fmt = (p: ProblemLine) => `- ${p.path || 'playbook'}${p.line ? `:${p.line}` : ''}: ${p.message}`;
    const lines: string[] = [];
    lines.push(report.passed
      ? `Validation passed${report.lines !== undefined ? ` (playbook.py: ${report.lines} lines)` : ''}: Save will accept this playbook.`
      : `Validation failed with ${report.errors.length} error(s); Save would refuse the playbook. Fix them, then validate again.`);
    if (report.errors.length) lines.push('Errors:', ...report.errors.map(fmt));
    if (report.warnings.length) lines.push('Warnings:', ...report.warnings.map(fmt));
    return {
      content: lines.join('\n'),
      isError: false,
      title: report.passed ? 'Validation passed' : `Validation failed (${report.errors.length} error${report.errors.length === 1 ? '' : 's'})`,
      status: report.passed ? 'done' : 'error',
      validation: report,
    };
  }

  private async ask(args: Args, signal: AbortSignal): Promise<ToolOutcome> {
    const question = str(args, 'question');
    let options: string[] = [];
    if (args.options !== undefined && args.options !== null) {
      if (!Array.isArray(args.options)) throw new ArgError('"options" must be an array of strings');
      options = args.options.filter((o): o is string => typeof o === 'string' && o.trim() !== '').map((o) => o.trim()).slice(0, 5);
    }
    const answer = await this.host.ask(question, options, signal);
    return ok(`The user answered: ${answer}`, 'Asked a question');
  }

  private planRespond(args: Args): ToolOutcome {
    const plan = str(args, 'plan');
    const diagram = stripFences(str(args, 'diagram'));
    this.host.showPlan(plan, diagram);
    const next = this.host.mode() === 'plan'
      ? 'If the user agreed to the plan or the plan is complete, call request_act_mode; if something is unclear, call ask_followup_question.'
      : 'You are in Act mode: go on and write the files.';
    return ok(`The plan and its diagram are shown to the user. ${next}`, 'Presented the plan');
  }

  private async requestAct(args: Args, signal: AbortSignal): Promise<ToolOutcome> {
    const message = typeof args.message === 'string' && args.message.trim() ? args.message.trim()
      : 'The plan is ready. Switch to Act mode to write playbook.py, README.md and manifest.json.';
    if (this.host.mode() === 'act') {
      return ok('The user is already in Act mode: write the files now (playbook.py, README.md, manifest.json), then validate.', 'Already in Act mode');
    }
    const r = await this.host.requestAct(message, signal);
    if (r.switched) {
      return ok('The user switched to Act mode. Write the files now: playbook.py, README.md (plain-words description with the mermaid flowchart) ' +
        'and manifest.json; then call validate, fix any error, and finish with attempt_completion.', 'Switched to Act mode');
    }
    return ok(`The user stayed in Plan mode and replied: ${r.reply ?? '(nothing)'}\nRevise the plan accordingly (plan_respond) or answer them.`,
      'Stayed in Plan mode');
  }

  private complete(args: Args): ToolOutcome {
    const result = str(args, 'result');
    this.host.complete(result);
    return { content: 'The task is marked complete; the summary is shown to the user.', isError: false, title: 'Task complete', status: 'done', finished: true };
  }
}

function parseArgs(raw: string): Args {
  const text = (raw ?? '').trim();
  if (text === '') return {};
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
  return v as Args;
}

function str(args: Args, key: string, opts: { allowEmpty?: boolean } = {}): string {
  const v = args[key];
  if (v === undefined || v === null) throw new ArgError(`the "${key}" argument is missing`);
  if (typeof v !== 'string') throw new ArgError(`the "${key}" argument must be a string`);
  if (!opts.allowEmpty && v.trim() === '') throw new ArgError(`the "${key}" argument is empty`);
  return v;
}

function bool(args: Args, key: string): boolean {
  const v = args[key];
  if (typeof v !== 'boolean') throw new ArgError(`the "${key}" argument must be true or false`);
  return v;
}

function confined(p: unknown): string {
  const r = checkToolPath(p);
  if (!r.ok) throw new ArgError(r.error);
  return r.path;
}

function occurrences(text: string, search: string): number {
  let n = 0;
  for (let i = text.indexOf(search); i >= 0; i = text.indexOf(search, i + search.length)) n++;
  return n;
}

function stripFences(diagram: string): string {
  const m = /^\s*```+\s*mermaid\s*\n([\s\S]*?)\n\s*```+\s*$/i.exec(diagram);
  return (m ? m[1] : diagram).trim();
}

/** Early hints about a file just written, so the model can fix them before validate. */
function fileNotes(path: string, content: string): string {
  const notes: string[] = [];
  if (path === 'playbook.py' && countLines(content) > MAX_LINES) {
    notes.push(`playbook.py has ${countLines(content)} lines; the limit is ${MAX_LINES}`);
  }
  if (path === 'manifest.json') {
    try {
      const m = JSON.parse(content) as Record<string, unknown>;
      if (m.entrypoint !== 'playbook.py:run') notes.push('manifest.json\'s "entrypoint" must be "playbook.py:run"');
      if (!Array.isArray(m.integrations)) notes.push('manifest.json needs "integrations", an array of integration profile names');
      if (typeof m.name !== 'string' || typeof m.description !== 'string') notes.push('manifest.json needs "name" and "description" strings');
    } catch (err) {
      notes.push(`manifest.json is not valid JSON (${(err as Error).message})`);
    }
  }
  if (path === 'README.md' && !/^\s{0,3}(```|~~~)\s*mermaid/im.test(content)) {
    notes.push('README.md has no ```mermaid flowchart block');
  }
  return notes.length ? ` Note: ${notes.join('; ')}.` : '';
}

function ok(content: string, title: string, path?: string): ToolOutcome {
  return { content, isError: false, title, status: 'done', path };
}

function fail(content: string, title: string, path?: string): ToolOutcome {
  return { content, isError: true, title, status: 'error', path };
}

function rejected(path: string, d: Decision): ToolOutcome {
  const feedback = d.feedback?.trim();
  return {
    content: `Error: the user rejected this change to ${path}; the file was not changed.` +
      (feedback ? ` They said: ${feedback}` : ' Ask what they want instead (ask_followup_question), or propose a different change.'),
    isError: true,
    title: `Rejected: ${path}`,
    status: 'refused',
    path,
  };
}
