// playbook_sdk.py: the documented stub of the runtime's ctx API, placed in
// the playbook folder so that the code written against it can be read and
// checked (Save's validation allows `import playbook_sdk`).
import sdkSource from '../assets/playbook_sdk.py';
import type { Folder } from './folder';

export const SDK_FILE = 'playbook_sdk.py';
export const SDK_SOURCE: string = sdkSource;

/** Writes playbook_sdk.py when the folder has none; true when it wrote it. A user's own copy is left alone. */
export async function ensureSdk(folder: Folder): Promise<boolean> {
  if (await folder.exists(SDK_FILE)) return false;
  await folder.write(SDK_FILE, SDK_SOURCE);
  return true;
}
