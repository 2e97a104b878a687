// The tools offered to the model, as OpenAI function tools.
import type { ToolSpec } from './llm';

function tool(name: string, description: string, properties: Record<string, unknown>, required: string[] = []): ToolSpec {
  return {
    type: 'function',
    function: { name, description, parameters: { type: 'object', properties, required, additionalProperties: false } },
  };
}

const path = { type: 'string', description: 'A path relative to the playbook folder, e.g. "playbook.py".' };

export const TOOL_NAMES = [
  'list_files', 'read_file', 'write_file', 'replace_in_file', 'validate',
  'ask_followup_question', 'plan_respond', 'request_act_mode', 'attempt_completion',
] as const;
export type ToolName = typeof TOOL_NAMES[number];

/** Tools that change files: refused in Plan mode, approved by the user in Act mode. */
export const WRITE_TOOLS: ReadonlySet<string> = new Set(['write_file', 'replace_in_file']);

export const TOOLS: ToolSpec[] = [
  tool('list_files', 'Lists the files of the playbook folder (or of a subfolder), with their sizes.', {
    path: { ...path, description: 'A subfolder to list; the whole playbook folder when omitted.' },
    recursive: { type: 'boolean', description: 'Include subfolders (default true).' },
  }),
  tool('read_file', 'Reads a text file of the playbook folder.', { path }, ['path']),
  tool('write_file',
    'Writes a whole file of the playbook folder (creating it, or replacing all its content). Act mode only; the user approves each write. ' +
    'Send the complete content: never elide parts with comments like "rest unchanged".',
    { path, content: { type: 'string', description: 'The complete new content of the file.' } }, ['path', 'content']),
  tool('replace_in_file',
    'Replaces one exact piece of text in a file of the playbook folder. Act mode only; the user approves each change. ' +
    '`search` must match the file exactly once (whitespace and indentation included); include enough surrounding lines to make it unique.',
    {
      path,
      search: { type: 'string', description: 'The exact text to find (it must occur exactly once).' },
      replace: { type: 'string', description: 'The text to put in its place.' },
    }, ['path', 'search', 'replace']),
  tool('validate',
    'Checks the playbook folder with the same checks as Save: playbook.py present, parses, defines run(alert, ctx), imports only the standard library, ' +
    'its own modules and playbook_sdk, at most 5,000 lines; manifest.json valid; README.md present with a mermaid block. Returns errors and warnings.',
    {}),
  tool('ask_followup_question',
    'Asks the user a question when something needed is unclear (an integration to use, a condition, who to notify). The answer comes back as the result.',
    {
      question: { type: 'string', description: 'The question, clear and specific.' },
      options: { type: 'array', items: { type: 'string' }, description: 'Up to 5 suggested answers the user can pick with one click.' },
    }, ['question']),
  tool('plan_respond',
    'Plan mode: presents the plan to the user, with a Mermaid flowchart that is drawn in the chat. Use it for every plan and every revision of a plan.',
    {
      plan: { type: 'string', description: 'The plan in Markdown: trigger, data used, steps, conditions, actions, integration profiles needed, expected outcome.' },
      diagram: { type: 'string', description: 'The Mermaid flowchart source, starting with "flowchart TD" (no ``` fences).' },
    }, ['plan', 'diagram']),
  tool('request_act_mode',
    'Plan mode: once the plan is complete and agreed, asks the user to switch to Act mode so you can write the files. ' +
    'The result says whether they switched or what they replied instead.',
    { message: { type: 'string', description: 'A short line telling the user what Act mode will do.' } }),
  tool('attempt_completion',
    'Finishes the task: call it once the files are written and validate passed. Summarize what the playbook does and what the user should do next ' +
    '(review, Save at the bottom left, create missing integration profiles, activate the playbook in the portal).',
    { result: { type: 'string', description: 'The summary shown to the user, in Markdown.' } }, ['result']),
];
