// One chat: the task's conversation with the model, the agent loop, the
// items shown in the chat view, the pending approvals and questions, the
// history in .agent/tasks/ and the checkpoints in .agent/checkpoints/.
// No vscode import: the extension glue (chatView.ts) passes callbacks.
import { Approvals, Pending } from './approvals';
import { Checkpoints } from './checkpoints';
import { describeError, NO_MODEL_MESSAGE } from './errors';
import { Decision, EditRequest, ToolExecutor, ValidationReport } from './executor';
import { Folder } from './folder';
import { newTask, TaskRecord, TaskStore } from './history';
import { ChatClient, ChatMessage, LlmError } from './llm';
import { Profile, systemPrompt } from './prompt';
import type { Item, Mode, Status, TemplateInfo, ToWebview, ViewState } from './protocol';
import { ensureSdk } from './sdk';
import type { ToolCall } from './stream';
import { findTemplate, templateFiles, templateInfos } from './templates';
import { TOOLS } from './tools';

export interface AgentServices {
  chat: ChatClient;
  /** The gateway's validation of the playbook folder (the same checks as Save). */
  validate(signal: AbortSignal): Promise<ValidationReport>;
  /** The tenant's integration profiles (never secrets). */
  profiles(): Promise<Profile[]>;
  /** Whether the gateway has a model; undefined when unknown. */
  modelConfigured?(): Promise<boolean | undefined>;
  /** The playbook's name (the edit session's), for the manifest and the prompt. */
  playbookName?(): Promise<string | undefined>;
}

export interface SessionOptions {
  folder: Folder;
  services: AgentServices;
  autoApprove: () => boolean;
  post: (msg: ToWebview) => void;
  /** A file was written by the agent or a template (the glue may open it). */
  onFileWritten?: (path: string) => void;
  /** Before validating: the glue saves open editors, so the gateway sees what the user sees. */
  beforeValidate?: () => Promise<void>;
  /** Model calls in one turn before the agent pauses (Retry continues). */
  maxSteps?: number;
  /** Consecutive turns whose tool calls all failed before the agent gives up. */
  maxMistakes?: number;
  /** The request size past which older tool outputs are shortened before sending (the gateway takes 4 MiB). */
  maxRequestBytes?: number;
  log?: (line: string) => void;
}

type ActAnswer = { switched: boolean; reply?: string };

export const DEFAULT_MAX_STEPS = 40;
export const DEFAULT_MAX_MISTAKES = 3;
const SHORTENED = '[… shortened to save context]';

let counter = 0;
function newId(prefix: string): string {
  counter = (counter + 1) % 1_000_000;
  return `${prefix}${Date.now().toString(36)}${counter.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export class AgentSession {
  private task: TaskRecord = newTask();
  private readonly store: TaskStore;
  private readonly checkpoints: Checkpoints;
  private readonly executor: ToolExecutor;
  private readonly approvals: Approvals;
  private readonly pendingEdits = new Pending<Decision>();
  private readonly pendingQuestions = new Pending<string>();
  private readonly pendingAct = new Pending<ActAnswer>();
  private status: Status = 'idle';
  private statusText = '';
  private running = false;
  private controller?: AbortController;
  private canRetry = false;
  /** Things the user did outside the conversation, told to the model with their next message. */
  private notes: string[] = [];
  private saving: Promise<void> = Promise.resolve();
  private modelMissing = false;
  private readonly opts: SessionOptions;

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.store = new TaskStore(opts.folder);
    this.checkpoints = new Checkpoints(opts.folder);
    this.approvals = new Approvals(opts.autoApprove, (req, signal) => this.askApproval(req, signal));
    this.executor = new ToolExecutor(opts.folder, {
      mode: () => this.task.mode,
      approveEdit: (req, signal) => this.approvals.edit(req, signal),
      beforeWrite: (req) => this.takeCheckpoint(`Before: ${req.summary}`).then(() => undefined),
      afterWrite: (path) => this.opts.onFileWritten?.(path),
      validate: async (signal) => {
        await this.opts.beforeValidate?.();
        return this.opts.services.validate(signal);
      },
      ask: (question, options, signal) => this.askQuestion(question, options, signal),
      showPlan: (plan, diagram) => this.upsert({ kind: 'plan', id: newId('p'), plan, diagram }),
      requestAct: (message, signal) => this.askAct(message, signal),
      complete: (result) => this.upsert({ kind: 'completion', id: newId('c'), result }),
    });
  }

  // ---- state for the view ----

  get mode(): Mode {
    return this.task.mode;
  }

  get isRunning(): boolean {
    return this.running;
  }

  get taskId(): string {
    return this.task.id;
  }

  items(): Item[] {
    return this.task.items;
  }

  messages(): ChatMessage[] {
    return this.task.messages;
  }

  viewState(): ViewState {
    return {
      taskId: this.task.id,
      title: this.task.title,
      mode: this.task.mode,
      status: this.status,
      statusText: this.statusText,
      autoApprove: this.opts.autoApprove(),
      canRetry: this.canRetry,
      items: this.task.items,
      templates: templateInfos(),
    };
  }

  /** Sends the whole state (the view opened or was reloaded). */
  postInit(): void {
    this.opts.post({ type: 'init', state: this.viewState() });
  }

  settingsChanged(): void {
    this.opts.post({ type: 'settings', autoApprove: this.opts.autoApprove() });
  }

  // ---- opening ----

  /** Reloads the latest task of this playbook (or starts one), places playbook_sdk.py, checks the model. */
  async open(): Promise<void> {
    const latest = await this.store.latest().catch(() => undefined);
    if (latest) {
      this.task = latest;
      this.recoverInterrupted();
    }
    try {
      await ensureSdk(this.opts.folder);
    } catch (err) {
      this.opts.log?.(`could not write playbook_sdk.py: ${String(err)}`);
    }
    await this.checkModel();
    this.postInit();
  }

  /** Asks the gateway whether a model is configured; shows the no-model notice and the templates when not. */
  async checkModel(): Promise<void> {
    const configured = await this.opts.services.modelConfigured?.().catch(() => undefined);
    this.modelMissing = configured === false;
    if (this.modelMissing) this.showNoModel();
  }

  /** After a reload nothing waits any more: pending cards are closed, and an unfinished turn can be retried. */
  private recoverInterrupted(): void {
    let changed = false;
    this.task.items = this.task.items.map((it) => {
      if ((it.kind === 'approval' || it.kind === 'question' || it.kind === 'actRequest') && it.state === 'pending') {
        changed = true;
        return { ...it, state: 'cancelled' } as Item;
      }
      if (it.kind === 'assistant' && it.streaming) {
        changed = true;
        return { ...it, streaming: false };
      }
      if (it.kind === 'tool' && (it.status === 'running' || it.status === 'preparing')) {
        changed = true;
        return { ...it, status: 'error', detail: 'interrupted' };
      }
      return it;
    });
    if (this.repairConversation('The editor was reloaded before this finished; it did not run.')) changed = true;
    const last = this.task.messages[this.task.messages.length - 1];
    const lastAssistant = [...this.task.messages].reverse().find((m) => m.role === 'assistant');
    const finished = lastAssistant?.role === 'assistant' &&
      (lastAssistant.tool_calls ?? []).some((c) => c.function.name === 'attempt_completion');
    if (last && (last.role === 'user' || last.role === 'tool') && !finished) {
      this.canRetry = true;
      this.task.items.push({ kind: 'notice', id: newId('n'), text: 'This task was interrupted. Press Retry to continue it, or start a new task.' });
      changed = true;
    }
    if (changed) void this.persist();
  }

  // ---- user actions ----

  async send(text: string): Promise<void> {
    const t = text.trim();
    if (!t) return;
    const question = this.pendingQuestions.ids()[0];
    if (question) {
      this.answer(question, t);
      return;
    }
    const act = this.pendingAct.ids()[0];
    if (act) {
      this.upsert({ kind: 'user', id: newId('u'), text: t, mode: this.task.mode });
      this.settleAct(act, { switched: false, reply: t });
      return;
    }
    const edit = this.pendingEdits.ids()[0];
    if (edit) {
      this.upsert({ kind: 'user', id: newId('u'), text: t, mode: this.task.mode });
      this.reject(edit, t);
      return;
    }
    if (this.running) {
      this.notice('The agent is working: wait for it to finish, or press Stop first.');
      return;
    }
    if (this.task.messages.length === 0) this.task.title = t.length > 80 ? t.slice(0, 77) + '…' : t;
    const prefix = this.takeNotes();
    this.task.messages.push({ role: 'user', content: prefix + t });
    this.upsert({ kind: 'user', id: newId('u'), text: t, mode: this.task.mode });
    await this.run();
  }

  setMode(mode: Mode): void {
    if (mode !== 'plan' && mode !== 'act') return;
    if (mode === this.task.mode) return;
    this.task.mode = mode;
    this.opts.post({ type: 'mode', mode });
    this.notice(mode === 'act'
      ? 'Switched to Act mode: the agent may now write files (each write asks for your approval unless auto-approve is on).'
      : 'Switched to Plan mode: the agent plans and cannot change files.');
    const act = this.pendingAct.ids()[0];
    if (act && mode === 'act') {
      this.settleAct(act, { switched: true });
    } else if (!this.running) {
      this.notes.push(`The user switched to ${mode === 'act' ? 'Act' : 'Plan'} mode.`);
    }
    void this.persist();
  }

  switchToAct(_id: string): void {
    this.setMode('act');
  }

  stop(): void {
    if (!this.controller) return;
    this.setStatus('running', 'Stopping…');
    this.controller.abort();
  }

  async retry(): Promise<void> {
    if (this.running) return;
    const last = this.task.messages[this.task.messages.length - 1];
    if (!last) return;
    this.repairConversation('Not run: the task was interrupted.');
    if (last.role === 'assistant' && !last.tool_calls?.length) {
      this.task.messages.push({ role: 'user', content: this.takeNotes() + 'Please continue.' });
    }
    await this.run();
  }

  async newTask(): Promise<void> {
    if (this.running) {
      this.controller?.abort();
      while (this.running) await sleep(20);
    }
    await this.persist();
    this.task = newTask();
    this.notes = [];
    this.canRetry = false;
    this.setStatus('idle', '');
    if (this.modelMissing) this.showNoModel(false);
    this.postInit();
  }

  approve(id: string): void {
    if (!this.pendingEdits.settle(id, { approved: true })) return;
    this.updateItem(id, (it) => (it.kind === 'approval' ? { ...it, state: 'approved' } : it));
  }

  reject(id: string, feedback?: string): void {
    const fb = feedback?.trim() || undefined;
    if (!this.pendingEdits.settle(id, { approved: false, feedback: fb })) return;
    this.updateItem(id, (it) => (it.kind === 'approval' ? { ...it, state: 'rejected', feedback: fb } : it));
  }

  answer(id: string, text: string): void {
    const t = text.trim();
    if (!t || !this.pendingQuestions.settle(id, t)) return;
    this.updateItem(id, (it) => (it.kind === 'question' ? { ...it, state: 'answered', answer: t } : it));
  }

  /** Restores checkpoint n (the present state is kept as a new checkpoint first). */
  async restore(n: number): Promise<void> {
    if (this.running) {
      this.notice('Stop the agent before restoring a checkpoint.');
      return;
    }
    try {
      const { restored, safety } = await this.checkpoints.restore(n);
      this.upsert({ kind: 'checkpoint', id: newId('k'), n: safety.n, label: safety.label, files: safety.files.length });
      this.updateItems((it) => (it.kind === 'checkpoint' && it.n === n ? { ...it, restored: true } : it));
      this.notice(`Restored checkpoint ${n} (${restored.files.length} file${restored.files.length === 1 ? '' : 's'}). ` +
        `The files as they were just before are kept as checkpoint ${safety.n}.`);
      this.notes.push(`The user restored the playbook folder to checkpoint ${n} ("${restored.label}"); files may differ from what you last wrote: read them again before editing.`);
      for (const f of restored.files) this.opts.onFileWritten?.(f);
    } catch (err) {
      this.errorItem('Could not restore the checkpoint', (err as Error).message, false);
    }
    await this.persist();
  }

  /** Writes a template's bundle (after a checkpoint), then validates it. */
  async useTemplate(id: string): Promise<void> {
    const t = findTemplate(id);
    if (!t) return;
    if (this.running) {
      this.notice('Stop the agent before applying a template.');
      return;
    }
    this.setStatus('running', `Writing the template "${t.title}"…`);
    try {
      await this.takeCheckpoint(`Before the template "${t.title}"`);
      await ensureSdk(this.opts.folder);
      const name = await this.opts.services.playbookName?.().catch(() => undefined);
      const files = templateFiles(t, name);
      for (const f of files) await this.opts.folder.write(f.path, f.content);
      this.notice(`Wrote the template "${t.title}": ${files.map((f) => f.path).join(', ')}. ` +
        `It uses the integration profile${t.integrations.length === 1 ? '' : 's'} ${t.integrations.map((i) => `"${i}"`).join(', ')}: ` +
        'create any that does not exist yet with the Add integration link at the top of this page (or in the portal, Automation > Integration profiles).');
      this.notes.push(`The user applied the template "${t.title}", which wrote ${files.map((f) => f.path).join(', ')}.`);
      this.opts.onFileWritten?.('playbook.py');
      this.setStatus('running', 'Validating…');
      await this.validateNow();
    } catch (err) {
      this.errorItem('Could not write the template', (err as Error).message, false);
    } finally {
      this.setStatus('idle', '');
      await this.persist();
    }
  }

  /** Validates now and shows the result (the chat's own Validate, and after a template). */
  async validateNow(): Promise<void> {
    const signal = new AbortController().signal;
    try {
      await this.opts.beforeValidate?.();
      const r = await this.opts.services.validate(signal);
      this.upsert({ kind: 'validation', id: newId('v'), passed: r.passed, errors: r.errors, warnings: r.warnings, lines: r.lines });
    } catch (err) {
      this.upsert({ kind: 'validation', id: newId('v'), passed: false, errors: [], warnings: [], error: (err as Error).message });
    }
  }

  // ---- the loop ----

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.canRetry = false;
    const controller = new AbortController();
    this.controller = controller;
    const signal = controller.signal;
    this.setStatus('running', 'Thinking…');
    let trimmedOnce = false;
    let mistakes = 0;
    const maxSteps = this.opts.maxSteps ?? DEFAULT_MAX_STEPS;
    let step = 0;
    try {
      const profiles = await this.opts.services.profiles().catch(() => undefined);
      const playbookName = await this.opts.services.playbookName?.().catch(() => undefined);
      for (; step < maxSteps; step++) {
        if (signal.aborted) throw new LlmError('aborted', 'stopped');
        const files = await this.opts.folder.list('', { limit: 200 }).then((l) => l.files.map((f) => f.path)).catch(() => undefined);
        const maxBytes = this.opts.maxRequestBytes ?? 3_500_000;
        if (JSON.stringify(this.task.messages).length > maxBytes) shortenOlderOutputs(this.task.messages, 2);
        const messages: ChatMessage[] = [
          { role: 'system', content: systemPrompt({ mode: this.task.mode, profiles, files, playbookName }) },
          ...this.task.messages,
        ];
        let textItem: string | undefined;
        const preparing = new Map<number, string>();
        this.setStatus('running', 'Thinking…');
        let completion;
        try {
          completion = await this.opts.services.chat.complete({ messages, tools: TOOLS }, {
            signal,
            onChunk: (effect) => {
              if (effect.content) {
                if (!textItem) {
                  textItem = newId('a');
                  this.upsert({ kind: 'assistant', id: textItem, text: effect.content, streaming: true });
                } else {
                  const it = this.find(textItem);
                  if (it && it.kind === 'assistant') it.text += effect.content;
                  this.opts.post({ type: 'delta', id: textItem, text: effect.content });
                }
              }
              if (effect.toolStarted) {
                const id = newId('t');
                preparing.set(effect.toolStarted.index, id);
                this.upsert({ kind: 'tool', id, tool: effect.toolStarted.name, title: preparingTitle(effect.toolStarted.name), status: 'preparing' });
                this.setStatus('running', preparingTitle(effect.toolStarted.name));
              }
            },
          });
        } catch (err) {
          if (textItem) this.updateItem(textItem, (it) => (it.kind === 'assistant' ? { ...it, streaming: false, text: it.text + (signal.aborted ? ' …(stopped)' : ' …(cut off)') } : it));
          for (const id of preparing.values()) this.removeItem(id);
          if (err instanceof LlmError && err.kind === 'context_too_long' && !trimmedOnce) {
            trimmedOnce = true;
            const n = shortenOlderOutputs(this.task.messages, 1);
            this.notice(n > 0
              ? `The conversation was too long for the model: ${n} older tool output${n === 1 ? ' was' : 's were'} shortened, and the request is sent again.`
              : 'The model refused the request (it may be too long); sending it once more.');
            step--;
            continue;
          }
          throw err;
        }
        if (textItem) this.updateItem(textItem, (it) => (it.kind === 'assistant' ? { ...it, streaming: false } : it));
        const calls = completion.toolCalls;
        this.task.messages.push({
          role: 'assistant',
          content: completion.content || null,
          ...(calls.length ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) } : {}),
        });
        await this.persist();
        if (calls.length === 0) {
          if (!completion.content.trim()) {
            this.task.messages.pop();
            throw new LlmError('bad_response', completion.malformed > 0
              ? `the model's answer could not be read (${completion.malformed} malformed chunk${completion.malformed === 1 ? '' : 's'})`
              : 'the model sent an empty answer');
          }
          break; // the model spoke to the user: their turn
        }
        let finished = false;
        let failures = 0;
        for (let i = 0; i < calls.length; i++) {
          const call = calls[i];
          const itemId = preparing.get(i) ?? newId('t');
          if (signal.aborted) {
            this.toolResult(call, 'Not run: the user stopped the task.');
            this.upsert({ kind: 'tool', id: itemId, tool: call.name, title: `${call.name}: not run (stopped)`, status: 'error' });
            continue;
          }
          this.upsert({ kind: 'tool', id: itemId, tool: call.name, title: runningTitle(call), status: 'running', path: pathOf(call) });
          this.setStatus('running', runningTitle(call));
          let outcome;
          try {
            outcome = await this.executor.execute(call, signal);
          } catch (err) {
            this.toolResult(call, signal.aborted ? 'Stopped by the user before it finished.' : `Error: ${(err as Error).message}`);
            this.upsert({ kind: 'tool', id: itemId, tool: call.name, title: `${call.name}: ${signal.aborted ? 'stopped' : 'failed'}`, status: 'error' });
            if (signal.aborted) continue;
            throw err;
          }
          this.toolResult(call, outcome.content);
          this.upsert({
            kind: 'tool', id: itemId, tool: call.name, title: outcome.title, status: outcome.status, path: outcome.path,
            detail: outcome.isError ? outcome.content.replace(/^Error: /, '') : undefined,
          });
          if (outcome.validation) {
            const v = outcome.validation;
            this.upsert({ kind: 'validation', id: newId('v'), passed: v.passed, errors: v.errors, warnings: v.warnings, lines: v.lines });
          }
          if (outcome.isError && outcome.status === 'error') failures++;
          if (outcome.finished) finished = true;
          await this.persist();
        }
        if (signal.aborted) throw new LlmError('aborted', 'stopped');
        mistakes = failures === calls.length ? mistakes + 1 : 0;
        if (mistakes >= (this.opts.maxMistakes ?? DEFAULT_MAX_MISTAKES)) {
          this.errorItem('The model keeps making mistakes',
            `Its last ${mistakes} turns were all invalid tool calls (see the red lines above). Retry to let it try again, rephrase your request, or start a new task.`, true);
          this.canRetry = true;
          return;
        }
        if (finished) return;
      }
      if (step >= maxSteps) {
        this.errorItem('Paused', `The agent took ${maxSteps} steps without finishing. Press Retry to let it go on, or tell it what to do.`, true);
        this.canRetry = true;
      }
    } catch (err) {
      const view = describeError(err);
      if (err instanceof LlmError && err.kind === 'aborted') {
        this.notice('Stopped. Your files are as they were after the last approved change. Press Retry to continue.');
        this.canRetry = true;
      } else if (view.noModel) {
        this.modelMissing = true;
        this.showNoModel();
        this.canRetry = false;
      } else {
        this.errorItem(view.title, view.message, view.retry, view.newTask);
        this.canRetry = view.retry;
      }
      this.opts.log?.(`agent stopped: ${err instanceof LlmError ? `${err.kind} ${err.status ?? ''} ${err.code ?? ''}` : ''} ${String((err as Error)?.message ?? err)}`);
    } finally {
      this.cancelPending();
      this.running = false;
      this.controller = undefined;
      this.setStatus('idle', '');
      await this.persist();
    }
  }

  // ---- helpers ----

  private toolResult(call: ToolCall, content: string): void {
    this.task.messages.push({ role: 'tool', tool_call_id: call.id, content });
  }

  /** Adds a result to every tool call that has none, so the conversation stays valid. */
  private repairConversation(reason: string): boolean {
    const msgs = this.task.messages;
    let changed = false;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (m.role !== 'assistant' || !m.tool_calls?.length) continue;
      const answered = new Set<string>();
      let j = i + 1;
      for (; j < msgs.length && msgs[j].role === 'tool'; j++) answered.add((msgs[j] as { tool_call_id: string }).tool_call_id);
      const missing = m.tool_calls.filter((c) => !answered.has(c.id));
      if (missing.length) {
        msgs.splice(j, 0, ...missing.map((c) => ({ role: 'tool' as const, tool_call_id: c.id, content: reason })));
        changed = true;
      }
    }
    return changed;
  }

  private async askApproval(req: EditRequest, signal: AbortSignal): Promise<Decision> {
    const id = newId('e');
    this.upsert({ kind: 'approval', id, tool: req.tool, path: req.path, summary: req.summary, preview: req.preview, state: 'pending' });
    this.setStatus('waiting', `Approve or reject: ${req.summary}`);
    const d = await this.pendingEdits.wait(id, signal, { approved: false, feedback: 'The task was stopped.' });
    if (signal.aborted) this.updateItem(id, (it) => (it.kind === 'approval' && it.state === 'pending' ? { ...it, state: 'cancelled' } : it));
    this.setStatus('running', d.approved ? `Writing ${req.path}…` : 'Thinking…');
    return d;
  }

  private async askQuestion(question: string, options: string[], signal: AbortSignal): Promise<string> {
    const id = newId('q');
    this.upsert({ kind: 'question', id, question, options, state: 'pending' });
    this.setStatus('waiting', 'The agent asks a question: answer below.');
    const answer = await this.pendingQuestions.wait(id, signal, '');
    if (signal.aborted) this.updateItem(id, (it) => (it.kind === 'question' && it.state === 'pending' ? { ...it, state: 'cancelled' } : it));
    this.setStatus('running', 'Thinking…');
    return answer;
  }

  private async askAct(message: string, signal: AbortSignal): Promise<ActAnswer> {
    const id = newId('m');
    this.upsert({ kind: 'actRequest', id, message, state: 'pending' });
    this.setStatus('waiting', 'Switch to Act mode to let the agent write the files, or reply to change the plan.');
    const r = await this.pendingAct.wait(id, signal, { switched: false, reply: '(stopped)' });
    if (signal.aborted) this.updateItem(id, (it) => (it.kind === 'actRequest' && it.state === 'pending' ? { ...it, state: 'cancelled' } : it));
    this.setStatus('running', 'Thinking…');
    return r;
  }

  private settleAct(id: string, answer: ActAnswer): void {
    if (!this.pendingAct.settle(id, answer)) return;
    this.updateItem(id, (it) => (it.kind === 'actRequest' ? { ...it, state: answer.switched ? 'switched' : 'declined' } : it));
  }

  private cancelPending(): void {
    for (const id of this.pendingEdits.ids()) this.pendingEdits.settle(id, { approved: false, feedback: 'The task was stopped.' });
    for (const id of this.pendingQuestions.ids()) this.pendingQuestions.settle(id, '');
    for (const id of this.pendingAct.ids()) this.pendingAct.settle(id, { switched: false });
  }

  private async takeCheckpoint(label: string): Promise<void> {
    const cp = await this.checkpoints.create(label);
    this.upsert({ kind: 'checkpoint', id: newId('k'), n: cp.n, label: cp.label, files: cp.files.length });
  }

  private showNoModel(post = true): void {
    const last = this.task.items[this.task.items.length - 1];
    if (last?.kind === 'noModel') return;
    const item: Item = { kind: 'noModel', id: newId('z'), message: NO_MODEL_MESSAGE, templates: templateInfos() as TemplateInfo[] };
    if (post) this.upsert(item);
    else this.task.items.push(item);
  }

  private takeNotes(): string {
    if (this.notes.length === 0) return '';
    const text = this.notes.map((n) => `[${n}]`).join('\n') + '\n\n';
    this.notes = [];
    return text;
  }

  private notice(text: string): void {
    this.upsert({ kind: 'notice', id: newId('n'), text });
  }

  private errorItem(title: string, message: string, retry: boolean, newTask?: boolean): void {
    this.upsert({ kind: 'error', id: newId('x'), title, message, retry, newTask });
  }

  private setStatus(status: Status, text: string): void {
    this.status = status;
    this.statusText = text;
    this.opts.post({ type: 'status', status, statusText: text, canRetry: this.canRetry && status === 'idle' });
  }

  private find(id: string): Item | undefined {
    return this.task.items.find((it) => it.id === id);
  }

  private upsert(item: Item): void {
    const i = this.task.items.findIndex((it) => it.id === item.id);
    if (i >= 0) this.task.items[i] = item;
    else this.task.items.push(item);
    this.opts.post({ type: 'item', item });
  }

  private updateItem(id: string, f: (it: Item) => Item): void {
    const it = this.find(id);
    if (it) this.upsert(f(it));
  }

  private updateItems(f: (it: Item) => Item): void {
    for (const it of [...this.task.items]) {
      const next = f(it);
      if (next !== it) this.upsert(next);
    }
  }

  private removeItem(id: string): void {
    this.task.items = this.task.items.filter((it) => it.id !== id);
    this.postInit();
  }

  /** Saves the task (writes are queued, never concurrent). */
  persist(): Promise<void> {
    if (this.task.messages.length === 0 && this.task.items.every((it) => it.kind === 'noModel' || it.kind === 'notice')) {
      return this.saving; // nothing worth keeping yet
    }
    this.task.updatedAt = new Date().toISOString();
    const snapshot = JSON.parse(JSON.stringify(this.task)) as TaskRecord;
    this.saving = this.saving.then(() => this.store.save(snapshot)).catch((err) => this.opts.log?.(`could not save the task: ${String(err)}`));
    return this.saving;
  }
}

/**
 * Shortens what older turns carry: tool outputs and the file contents of
 * write_file calls, except in the last `keepTurns` assistant turns.
 * Returns how many were shortened.
 */
export function shortenOlderOutputs(messages: ChatMessage[], keepTurns: number): number {
  let assistantSeen = 0;
  let boundary = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'assistant' && ++assistantSeen === keepTurns) {
      boundary = i;
      break;
    }
  }
  if (assistantSeen < keepTurns) return 0;
  let n = 0;
  for (let i = 0; i < boundary; i++) {
    const m = messages[i];
    if (m.role === 'tool' && m.content.length > 400 && !m.content.endsWith(SHORTENED)) {
      messages[i] = { ...m, content: m.content.slice(0, 200) + '\n' + SHORTENED };
      n++;
    } else if (m.role === 'assistant' && m.tool_calls) {
      let changed = false;
      const calls = m.tool_calls.map((c) => {
        if (c.function.arguments.length <= 400 || c.function.arguments.includes(SHORTENED)) return c;
        let args: Record<string, unknown>;
        try {
          args = JSON.parse(c.function.arguments) as Record<string, unknown>;
        } catch {
          args = {};
        }
        const small: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(args)) {
          small[k] = typeof v === 'string' && v.length > 200 ? `${v.slice(0, 100)}\n${SHORTENED} (${v.length} characters; read the file to see it)` : v;
        }
        changed = true;
        n++;
        return { ...c, function: { ...c.function, arguments: JSON.stringify(small) } };
      });
      if (changed) messages[i] = { ...m, tool_calls: calls };
    }
  }
  return n;
}

function pathOf(call: ToolCall): string | undefined {
  try {
    const a = JSON.parse(call.arguments) as { path?: unknown };
    return typeof a.path === 'string' ? a.path : undefined;
  } catch {
    return undefined;
  }
}

function preparingTitle(tool: string): string {
  switch (tool) {
    case 'write_file': return 'Writing a file…';
    case 'replace_in_file': return 'Preparing an edit…';
    case 'plan_respond': return 'Writing the plan…';
    case 'attempt_completion': return 'Finishing…';
    default: return `${tool}…`;
  }
}

function runningTitle(call: ToolCall): string {
  const p = pathOf(call);
  switch (call.name) {
    case 'list_files': return 'Listing files…';
    case 'read_file': return `Reading ${p ?? 'a file'}…`;
    case 'write_file': return `Writing ${p ?? 'a file'}…`;
    case 'replace_in_file': return `Editing ${p ?? 'a file'}…`;
    case 'validate': return 'Validating…';
    case 'ask_followup_question': return 'Asking you a question…';
    case 'plan_respond': return 'Presenting the plan…';
    case 'request_act_mode': return 'Asking to switch to Act mode…';
    case 'attempt_completion': return 'Finishing…';
    default: return `${call.name || 'unknown tool'}…`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
