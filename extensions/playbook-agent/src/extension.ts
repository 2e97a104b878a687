// Playbook Studio Agent: wiring only. The Save command lives in saveCommand.ts,
// the gateway client in gateway.ts, the chat view in chatView.ts (the agent
// itself in agent/), the Markdown preview's mermaid support in markdown/.
import * as vscode from 'vscode';
import { ChatViewProvider, VIEW_ID } from './chatView';
import { mermaidPlugin, MarkdownItLike } from './markdown/mermaidPlugin';
import { SAVE_COMMAND, SaveCommand } from './saveCommand';

export function activate(context: vscode.ExtensionContext): { extendMarkdownIt<T extends MarkdownItLike>(md: T): T } {
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
  // VS Code's Markdown preview calls this for extensions contributing markdown.markdownItPlugins.
  return { extendMarkdownIt: (md) => mermaidPlugin(md) };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
