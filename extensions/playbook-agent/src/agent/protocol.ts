// The chat view's model and the messages between the extension and its
// webview. Shared by the extension host (Node) and the webview (browser):
// plain data only, no imports.

export type Mode = 'plan' | 'act';

export interface ProblemLine {
  path: string;
  line?: number;
  message: string;
}

export interface TemplateInfo {
  id: string;
  title: string;
  description: string;
  integrations: string[];
}

/** One entry of the chat, in the order shown. Every item has a unique id. */
export type Item =
  | { kind: 'user'; id: string; text: string; mode: Mode }
  | { kind: 'assistant'; id: string; text: string; streaming?: boolean }
  | {
    kind: 'tool'; id: string; tool: string; title: string;
    status: 'preparing' | 'running' | 'done' | 'error' | 'refused';
    path?: string; detail?: string;
  }
  | {
    kind: 'approval'; id: string; tool: string; path: string; summary: string; preview: string;
    state: 'pending' | 'approved' | 'rejected' | 'auto' | 'cancelled'; feedback?: string;
  }
  | { kind: 'plan'; id: string; plan: string; diagram: string }
  | { kind: 'actRequest'; id: string; message: string; state: 'pending' | 'switched' | 'declined' | 'cancelled' }
  | { kind: 'question'; id: string; question: string; options: string[]; state: 'pending' | 'answered' | 'cancelled'; answer?: string }
  | { kind: 'validation'; id: string; passed: boolean; errors: ProblemLine[]; warnings: ProblemLine[]; lines?: number; error?: string }
  | { kind: 'completion'; id: string; result: string }
  | { kind: 'checkpoint'; id: string; n: number; label: string; files: number; restored?: boolean }
  | { kind: 'error'; id: string; title: string; message: string; retry: boolean; newTask?: boolean }
  | { kind: 'notice'; id: string; text: string }
  | { kind: 'noModel'; id: string; message: string; templates: TemplateInfo[] };

export type Status = 'idle' | 'running' | 'waiting';

export interface ViewState {
  taskId: string;
  title: string;
  mode: Mode;
  status: Status;
  statusText: string;
  autoApprove: boolean;
  canRetry: boolean;
  items: Item[];
  templates: TemplateInfo[];
}

/** Extension → webview. */
export type ToWebview =
  | { type: 'init'; state: ViewState }
  | { type: 'item'; item: Item }
  | { type: 'delta'; id: string; text: string }
  | { type: 'status'; status: Status; statusText: string; canRetry: boolean }
  | { type: 'mode'; mode: Mode }
  | { type: 'settings'; autoApprove: boolean };

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'send'; text: string }
  | { type: 'setMode'; mode: Mode }
  | { type: 'stop' }
  | { type: 'retry' }
  | { type: 'newTask' }
  | { type: 'approve'; id: string }
  | { type: 'reject'; id: string; feedback?: string }
  | { type: 'answer'; id: string; text: string }
  | { type: 'switchToAct'; id: string }
  | { type: 'restore'; n: number }
  | { type: 'useTemplate'; id: string }
  | { type: 'setAutoApprove'; value: boolean }
  | { type: 'openFile'; path: string; line?: number }
  | { type: 'openPreview'; path: string };

export function isFromWebview(v: unknown): v is FromWebview {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}
