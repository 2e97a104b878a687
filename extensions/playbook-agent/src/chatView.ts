// The chat view in the side bar: VS Code glue only. The agent itself
// (session.ts and the rest of src/agent/) has no vscode import.
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { AgentSession, AgentServices } from './agent/session';
import { ChatClient, LlmError, Transport } from './agent/llm';
import { checkToolPath, Folder } from './agent/folder';
import { FromWebview, isFromWebview, ToWebview } from './agent/protocol';
import { GatewayClient, GatewayError } from './gateway';

export const VIEW_ID = 'playbookAgent.chat';
export const AUTO_APPROVE_SETTING = 'autoApproveEdits';

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view?: vscode.WebviewView;
  private session?: AgentSession;
  private opening?: Promise<AgentSession | undefined>;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly log: vscode.LogOutputChannel) {
    this.disposables.push(vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`playbookAgent.${AUTO_APPROVE_SETTING}`)) this.session?.settingsChanged();
    }));
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    view.webview.html = this.html(view.webview);
    this.disposables.push(
      view.webview.onDidReceiveMessage((m: unknown) => {
        if (isFromWebview(m)) void this.handle(m).catch((err) => this.log.error(`chat: ${String(err)}`));
      }),
      view.onDidDispose(() => { this.view = undefined; }),
    );
  }

  /** Starts a new task (the view's title-bar command). */
  async newTask(): Promise<void> {
    const s = await this.ensureSession();
    await s?.newTask();
  }

  private post(msg: ToWebview): void {
    void this.view?.webview.postMessage(msg);
  }

  private async ensureSession(): Promise<AgentSession | undefined> {
    if (this.session) return this.session;
    if (!this.opening) {
      this.opening = (async () => {
        const folderUri = vscode.workspace.workspaceFolders?.[0]?.uri;
        if (!folderUri || folderUri.scheme !== 'file') return undefined;
        const session = new AgentSession({
          folder: new Folder(folderUri.fsPath),
          services: this.services(),
          autoApprove: () => vscode.workspace.getConfiguration('playbookAgent').get<boolean>(AUTO_APPROVE_SETTING, false),
          post: (m) => this.post(m),
          onFileWritten: (p) => void this.showFile(p),
          beforeValidate: async () => { await vscode.workspace.saveAll(false); },
          log: (line) => this.log.info(line),
        });
        await session.open();
        this.session = session;
        return session;
      })();
    }
    return this.opening;
  }

  private async handle(m: FromWebview): Promise<void> {
    if (m.type === 'ready') {
      const s = await this.ensureSession();
      if (s) {
        s.postInit();
      } else {
        this.post({ type: 'init', state: {
          taskId: '', title: '', mode: 'plan', status: 'idle', statusText: '', autoApprove: false, canRetry: false, templates: [],
          items: [{ kind: 'notice', id: 'no-folder', text: 'Open a playbook folder to work with the agent.' }],
        } });
      }
      return;
    }
    const s = await this.ensureSession();
    if (!s) return;
    switch (m.type) {
      case 'send': if (typeof m.text === 'string') await s.send(m.text); break;
      case 'setMode': s.setMode(m.mode); break;
      case 'stop': s.stop(); break;
      case 'retry': await s.retry(); break;
      case 'newTask': await s.newTask(); break;
      case 'approve': s.approve(String(m.id)); break;
      case 'reject': s.reject(String(m.id), typeof m.feedback === 'string' ? m.feedback : undefined); break;
      case 'answer': s.answer(String(m.id), String(m.text ?? '')); break;
      case 'switchToAct': s.switchToAct(String(m.id)); break;
      case 'restore': if (Number.isInteger(m.n)) await s.restore(m.n); break;
      case 'useTemplate': await s.useTemplate(String(m.id)); break;
      case 'setAutoApprove':
        await vscode.workspace.getConfiguration('playbookAgent').update(AUTO_APPROVE_SETTING, m.value === true, vscode.ConfigurationTarget.Global);
        s.settingsChanged();
        break;
      case 'openFile': await this.showFile(m.path, m.line, false); break;
      case 'openPreview': await this.showPreview(m.path); break;
    }
  }

  private async showFile(rel: string, line?: number, preserveFocus = true): Promise<void> {
    const folderUri = vscode.workspace.workspaceFolders?.[0]?.uri;
    const checked = checkToolPath(rel);
    if (!folderUri || !checked.ok) return;
    try {
      const uri = vscode.Uri.joinPath(folderUri, ...checked.path.split('/'));
      const opts: vscode.TextDocumentShowOptions = { preview: true, preserveFocus };
      if (line && line > 0) opts.selection = new vscode.Range(line - 1, 0, line - 1, 0);
      await vscode.window.showTextDocument(uri, opts);
    } catch (err) {
      this.log.warn(`could not open ${rel}: ${String(err)}`);
    }
  }

  /** The Markdown preview (which draws the mermaid blocks through this extension's preview script). */
  private async showPreview(rel: string): Promise<void> {
    const folderUri = vscode.workspace.workspaceFolders?.[0]?.uri;
    const checked = checkToolPath(rel);
    if (!folderUri || !checked.ok) return;
    const uri = vscode.Uri.joinPath(folderUri, ...checked.path.split('/'));
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch (err) {
      this.log.warn(`could not preview ${rel}: ${String(err)}`);
      await this.showFile(rel, undefined, false);
    }
  }

  private services(): AgentServices {
    let client: GatewayClient | undefined;
    let configError: GatewayError | undefined;
    try {
      client = new GatewayClient(process.env);
    } catch (err) {
      configError = err as GatewayError;
    }
    const transport: Transport = async (body, signal) => {
      if (!client) throw new LlmError('unavailable', configError?.message ?? 'the gateway is not configured');
      return client.chatCompletions(body, signal);
    };
    return {
      chat: new ChatClient(transport),
      validate: async () => {
        if (!client) throw new Error(configError?.message ?? 'the gateway is not configured');
        const session = await client.currentSession();
        return client.validate(session.id);
      },
      profiles: async () => (client ? client.integrationProfiles() : []),
      modelConfigured: async () => (client ? (await client.llmUsage()).configured : undefined),
      playbookName: async () => {
        if (client) {
          const name = await client.currentSession().then((s) => s.name).catch(() => '');
          if (name) return name;
        }
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        return folder ? path.basename(folder) : undefined;
      },
    };
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(18).toString('base64');
    const uri = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, ...p)).toString();
    const csp = [
      `default-src 'none'`,
      `img-src ${webview.cspSource} data:`,
      // mermaid puts a <style> inside each SVG it draws: inline styles only, scripts stay nonce-only.
      `style-src ${webview.cspSource} 'unsafe-inline'`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uri('media', 'chat.css')}">
<title>Playbook Agent</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${uri('dist', 'webview.js')}"></script>
<script nonce="${nonce}" src="${uri('dist', 'mermaid.js')}" async></script>
</body>
</html>`;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
