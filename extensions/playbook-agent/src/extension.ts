// Playbook Studio Agent: wiring only. The Save command lives in saveCommand.ts,
// the gateway client in gateway.ts.
import * as vscode from 'vscode';
import { SAVE_COMMAND, SaveCommand } from './saveCommand';

export function activate(context: vscode.ExtensionContext): void {
  const item = vscode.window.createStatusBarItem('playbookAgent.save', vscode.StatusBarAlignment.Left, 10_000);
  item.name = 'Playbook Studio: Save playbook';
  const diagnostics = vscode.languages.createDiagnosticCollection('playbook-studio');
  const log = vscode.window.createOutputChannel('Playbook Studio', { log: true });
  const save = new SaveCommand(item, diagnostics, log);
  context.subscriptions.push(
    item,
    diagnostics,
    log,
    save,
    vscode.commands.registerCommand(SAVE_COMMAND, () => save.run()),
  );
  item.show();
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
