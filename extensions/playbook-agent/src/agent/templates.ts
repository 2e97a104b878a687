// The template gallery: complete, valid bundles to start from when no model
// is configured (or whenever the user prefers). Each is playbook.py,
// README.md with a mermaid flowchart, and manifest.json.
import phishingPy from '../templates/phishing-triage/playbook.py';
import phishingReadme from '../templates/phishing-triage/README.md';
import phishingManifest from '../templates/phishing-triage/manifest.json';
import urlPy from '../templates/url-reputation/playbook.py';
import urlReadme from '../templates/url-reputation/README.md';
import urlManifest from '../templates/url-reputation/manifest.json';
import iamPy from '../templates/iam-user-block/playbook.py';
import iamReadme from '../templates/iam-user-block/README.md';
import iamManifest from '../templates/iam-user-block/manifest.json';
import type { TemplateInfo } from './protocol';

export interface Manifest {
  name: string;
  description: string;
  integrations: string[];
  entrypoint: string;
}

export interface Template extends TemplateInfo {
  files: { 'playbook.py': string; 'README.md': string };
  manifest: Manifest;
}

export const TEMPLATES: Template[] = [
  {
    id: 'url-reputation',
    title: 'Enrich URLs with a reputation service',
    description: 'For each URL entity of the alert, ask VirusTotal for its reputation, then add the verdicts as a comment on the incident.',
    integrations: urlManifest.integrations,
    files: { 'playbook.py': urlPy, 'README.md': urlReadme },
    manifest: urlManifest,
  },
  {
    id: 'iam-user-block',
    title: 'Block an AWS IAM user on a high-severity alert',
    description: 'When a high-severity alert includes an IAM user entity: block the user, assign the alert to John and add a remediation comment.',
    integrations: iamManifest.integrations,
    files: { 'playbook.py': iamPy, 'README.md': iamReadme },
    manifest: iamManifest,
  },
  {
    id: 'phishing-triage',
    title: 'Phishing triage',
    description: 'Check whether the phishing sender is one of our users; if so disable the account, then notify the SOC and comment on the alert.',
    integrations: phishingManifest.integrations,
    files: { 'playbook.py': phishingPy, 'README.md': phishingReadme },
    manifest: phishingManifest,
  },
];

export function templateInfos(): TemplateInfo[] {
  return TEMPLATES.map(({ id, title, description, integrations }) => ({ id, title, description, integrations }));
}

export function findTemplate(id: string): Template | undefined {
  return TEMPLATES.find((t) => t.id === id);
}

/**
 * The files a template writes. The manifest takes the playbook's own name
 * when one is known; its description and integrations stay the template's.
 */
export function templateFiles(t: Template, playbookName?: string): { path: string; content: string }[] {
  const name = playbookName?.trim() || t.manifest.name;
  const manifest: Manifest = { ...t.manifest, name };
  return [
    { path: 'playbook.py', content: t.files['playbook.py'] },
    { path: 'README.md', content: t.files['README.md'] },
    { path: 'manifest.json', content: JSON.stringify(manifest, null, 2) + '\n' },
  ];
}
