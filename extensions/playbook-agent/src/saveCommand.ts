// The Save command: the status-bar item's state, saving editors, calling the
// gateway, and showing the outcome (messages and the Problems panel).
import * as vscode from 'vscode';
import { GatewayClient, GatewayError } from './gateway';
import { diagnosticsByFile, errorMessage, savedMessage } from './messages';

export const SAVE_COMMAND = 'playbookAgent.save';
const IDLE_TEXT = '$(save) Save playbook';
const IDLE_TOOLTIP = 'Save this playbook to Playbook Studio as a new version (it starts disabled)';
const BUSY_TEXT = '$(sync~spin) Saving…';

export class SaveCommand implements vscode.Disposable {
  private busy = false;

  constructor(
    private readonly item: vscode.StatusBarItem,
    private readonly diagnostics: vscode.DiagnosticCollection,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.showIdle();
  }

  async run(): Promise<void> {
    if (this.busy) return; // a click while saving does nothing
    this.busy = true;
    this.showBusy();
    let gatewayUrl: string | undefined;
    try {
      const client = new GatewayClient(process.env);
      gatewayUrl = client.baseUrl;
      if (!(await vscode.workspace.saveAll(false))) {
        void vscode.window.showErrorMessage('Some open files could not be saved to disk; fix that and save the playbook again.');
        return;
      }
      const session = await client.currentSession();
      const result = await client.save(session.id);
      this.diagnostics.clear();
      this.log.info(`saved session ${session.id} as version ${result.version.number}`);
      void vscode.window.showInformationMessage(savedMessage(result));
    } catch (err) {
      this.report(err, gatewayUrl);
    } finally {
      this.busy = false;
      this.showIdle();
    }
  }

  private report(err: unknown, gatewayUrl: string | undefined): void {
    const message = errorMessage(err, gatewayUrl);
    if (err instanceof GatewayError) {
      this.log.warn(`save failed: ${err.route ?? '-'} ${err.status ?? '-'} ${err.code}: ${err.message}`);
    } else {
      this.log.error(`save failed: ${String(err)}`);
    }
    if (err instanceof GatewayError && err.code === 'validation_failed') {
      this.showProblems(err);
      void vscode.window.showErrorMessage(message, 'Show Problems').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.actions.view.problems');
      });
      return;
    }
    void vscode.window.showErrorMessage(message);
  }

  private showProblems(err: GatewayError): void {
    this.diagnostics.clear();
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    if (!folder) return;
    for (const file of diagnosticsByFile(err.problems)) {
      const uri = file.path ? vscode.Uri.joinPath(folder, ...file.path.split('/')) : folder;
      this.diagnostics.set(uri, file.items.map(({ line, message }) => {
        const d = new vscode.Diagnostic(new vscode.Range(line, 0, line, Number.MAX_SAFE_INTEGER),
          message, vscode.DiagnosticSeverity.Error);
        d.source = 'Playbook Studio';
        return d;
      }));
    }
  }

  private showIdle(): void {
    this.item.text = IDLE_TEXT;
    this.item.tooltip = IDLE_TOOLTIP;
    this.item.command = SAVE_COMMAND;
  }

  private showBusy(): void {
    this.item.text = BUSY_TEXT;
    this.item.tooltip = 'Saving this playbook to Playbook Studio…';
    this.item.command = undefined;
  }

  dispose(): void {
    this.diagnostics.clear();
  }
}
