// Per-action approval of file edits: the auto-approve setting
// (playbookAgent.autoApproveEdits) approves at once; otherwise the user is
// asked (an Approve / Reject card in the chat) and the answer awaited.
import type { Decision, EditRequest } from './executor';

export type AskUser = (req: EditRequest, signal: AbortSignal) => Promise<Decision>;

export class Approvals {
  constructor(private readonly autoApproveEdits: () => boolean, private readonly askUser: AskUser) {}

  async edit(req: EditRequest, signal: AbortSignal): Promise<Decision> {
    if (signal.aborted) return { approved: false, feedback: 'The task was stopped.' };
    if (this.autoApproveEdits()) return { approved: true, auto: true };
    return this.askUser(req, signal);
  }
}

/**
 * Answers the UI gives later (approvals, questions, the switch to Act),
 * each awaited by id; a stop settles them all with the fallback value.
 */
export class Pending<T> {
  private waiting = new Map<string, { resolve: (v: T) => void; cleanup: () => void }>();

  wait(id: string, signal: AbortSignal, onAbort: T): Promise<T> {
    return new Promise<T>((resolve) => {
      if (signal.aborted) {
        resolve(onAbort);
        return;
      }
      const abort = () => this.settle(id, onAbort);
      signal.addEventListener('abort', abort, { once: true });
      this.waiting.set(id, { resolve, cleanup: () => signal.removeEventListener('abort', abort) });
    });
  }

  /** Settles one; false when nothing waits under that id (already answered, or from an older session). */
  settle(id: string, value: T): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    w.cleanup();
    w.resolve(value);
    return true;
  }

  has(id: string): boolean {
    return this.waiting.has(id);
  }

  ids(): string[] {
    return [...this.waiting.keys()];
  }
}
