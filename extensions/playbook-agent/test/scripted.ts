// Starts test/scripted-llm.mjs as a child process, as the browser test does.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const SCRIPTED_LLM = path.resolve(__dirname, '../../test/scripted-llm.mjs');
export const TRANSCRIPTS = path.resolve(__dirname, '../../test/transcripts');

export interface ScriptedRequest {
  transcript: string;
  step: number;
  attempt: number;
  messages: number;
  lastRole: string;
  lastContent: string;
  stream: boolean;
  tools: string[];
  mode: string;
  bytes: number;
}

export class ScriptedLLM {
  url = '';
  private proc?: ChildProcess;

  async start(transcripts: string[], extra: string[] = ['--delay-ms', '0']): Promise<string> {
    const args = [SCRIPTED_LLM, ...transcripts.flatMap((t) => ['--transcript', t]), ...extra];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    let stderr = '';
    proc.stderr!.on('data', (d) => { stderr += String(d); });
    this.url = await new Promise<string>((resolve, reject) => {
      const rl = readline.createInterface({ input: proc.stdout! });
      rl.once('line', (line) => {
        try {
          resolve((JSON.parse(line) as { listening: string }).listening);
        } catch (err) {
          reject(err);
        }
      });
      proc.once('exit', (code) => reject(new Error(`scripted-llm exited (${code}): ${stderr}`)));
    });
    return this.url;
  }

  async requests(): Promise<ScriptedRequest[]> {
    return (await fetch(`${this.url}/_scripted/requests`)).json() as Promise<ScriptedRequest[]>;
  }

  async reset(): Promise<void> {
    await fetch(`${this.url}/_scripted/reset`, { method: 'POST' });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}
