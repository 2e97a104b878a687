// Playbook Studio Agent: wiring only. The Save command lives in saveCommand.ts,
// the gateway client in gateway.ts, the chat view in chatView.ts (the agent
// itself in agent/), the Markdown preview's mermaid drawing in markdown/;
// the Markdown dialect is the portal's (web/src/markdown.js).
import type { MarkdownIt } from 'markdown-it';
import * as vscode from 'vscode';
import { playbookMarkdown } from '../../../web/src/markdown.js';
import { ChatViewProvider, VIEW_ID } from './chatView';
import { SAVE_COMMAND, SaveCommand } from './saveCommand';

export function activate(context: vscode.ExtensionContext): { extendMarkdownIt(md: MarkdownIt): MarkdownIt } {
  const item = vscode.window.createStatusBarItem('playbookAgent.save', vscode.StatusBarAlignment.Left, 10_000);
  item.name = 'Playbook Studio: Save playbook';
  const diagnostics = vscode.languages.createDiagnosticCollection('playbook-studio');
  const log = vscode.window.createOutputChannel('Playbook Studio', { log: true });
  const save = new SaveCommand(item, diagnostics, log);
  const chat = new ChatViewProvider(context.extensionUri, log);
  context.subscriptions.push(
    item,
    diagnostics,
    log,
    save,
    chat,
    vscode.commands.registerCommand(SAVE_COMMAND, () => save.run()),
    vscode.window.registerWebviewViewProvider(VIEW_ID, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    vscode.commands.registerCommand('playbookAgent.newTask', () => chat.newTask()),
  );
  item.show();
  // In a Playbook Studio workspace the agent is the way in: show it.
  if (process.env.PLAYBOOK_GATEWAY_URL && vscode.workspace.getConfiguration('playbookAgent').get<boolean>('openOnStartup', true)) {
    void vscode.commands.executeCommand(`${VIEW_ID}.focus`).then(undefined, () => undefined);
  }
  // VS Code's Markdown preview calls this for extensions contributing
  // markdown.markdownItPlugins: the preview speaks the portal's dialect (no
  // raw HTML, allowed links only, ```mermaid drawn by dist/mermaid.js).
  return { extendMarkdownIt: (md) => playbookMarkdown(md) };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
