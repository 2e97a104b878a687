// What the chat says when a model call fails: a title, plain words, and
// whether a Retry (or a new task) makes sense.
import { LlmError } from './llm';

export const CONFIGURE_MODEL =
  'To configure one, an administrator sets LLM_BASE_URL, LLM_MODEL and LLM_API_KEY on the Playbook Studio gateway and restarts it ' +
  '(LLM_BASE_URL is any OpenAI-compatible endpoint: OpenAI, Azure OpenAI, vLLM, Ollama or LiteLLM). The key stays on the gateway; it never reaches this workspace.';

export const NO_MODEL_MESSAGE =
  'No AI model is configured on this Playbook Studio, so the agent cannot plan or write playbooks yet. ' +
  CONFIGURE_MODEL + ' Meanwhile, start from one of the templates below: each writes a complete, valid playbook you can edit and save.';

export interface ErrorView {
  title: string;
  message: string;
  retry: boolean;
  newTask?: boolean;
  noModel?: boolean;
}

export function describeError(err: unknown): ErrorView {
  if (!(err instanceof LlmError)) {
    return { title: 'Something went wrong', message: err instanceof Error ? err.message : String(err), retry: true };
  }
  const detail = err.message;
  switch (err.kind) {
    case 'no_model':
      return { title: 'No AI model is configured', message: NO_MODEL_MESSAGE, retry: false, noModel: true };
    case 'budget':
      return {
        title: 'Today\'s AI token budget is used up',
        message: `${ensureStop(detail)} Your files are safe. The budget counts per organisation and UTC day; ` +
          'try again after midnight UTC, or ask an administrator to raise LLM_DAILY_TOKEN_BUDGET. ' +
          'Meanwhile you can edit the files yourself, or start from a template.',
        retry: false,
      };
    case 'rate_limited':
      return { title: 'The model is busy', message: `The model provider asked to slow down: ${detail} Wait a moment, then retry.`, retry: true };
    case 'context_too_long':
      return {
        title: 'The conversation is too long for the model',
        message: `The model refused the request even after older tool outputs were shortened (${stripStop(detail)}). ` +
          'Start a new task: your files stay as they are, and the new task can read them again.',
        retry: true,
        newTask: true,
      };
    case 'provider':
      return { title: 'The model provider cannot answer', message: `${ensureStop(detail)} Retry in a moment; if it keeps failing, tell an administrator.`, retry: true };
    case 'unauthorized':
      return { title: 'This workspace may not use the model', message: `The gateway refused this workspace's token (${stripStop(detail)}). Reopen the playbook from the portal.`, retry: false };
    case 'unavailable':
      return { title: 'The model endpoint is not available', message: `This Playbook Studio gateway has no AI endpoint (${stripStop(detail)}).`, retry: false, noModel: true };
    case 'network':
      return { title: 'Cannot reach the model', message: `The connection to Playbook Studio failed: ${stripStop(detail)}. Check the network, then retry.`, retry: true };
    case 'timeout':
      return { title: 'The model is too slow', message: `No answer arrived in time (${stripStop(detail)}). Retry; a shorter request may help.`, retry: true };
    case 'bad_response':
      return { title: 'The model\'s answer could not be read', message: `${ensureStop(capitalize(detail))} Retry to ask again.`, retry: true };
    case 'aborted':
      return { title: 'Stopped', message: 'You stopped the task. Retry to continue where it stopped.', retry: true };
  }
}

function stripStop(s: string): string {
  return s.replace(/[.\s]+$/, '');
}

function ensureStop(s: string): string {
  const t = s.trim();
  return /[.!?]$/.test(t) ? t : t + '.';
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
