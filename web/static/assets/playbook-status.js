// @ts-check
// What runs of a playbook, in words: an active playbook runs the version
// someone activated, and a later save is not live until it is activated
// in turn ("v3 active · v4 saved, not active"). No DOM here: the list and
// the playbook page share it, and web/test checks it under node.

/**
 * The active and latest version numbers of a Playbook of the API. A
 * playbook without activeVersion (an older gateway) that is active runs its
 * latest version.
 * @param {{ status?: string, activeVersion?: number | null, latestVersion?: number, currentVersion?: number }} p
 * @returns {{ active: number | null, latest: number }}
 */
export function versionsOf(p) {
  const latest = Number(p.latestVersion ?? p.currentVersion ?? 0) || 0;
  if (p.status !== 'active') return { active: null, latest };
  const active = Number(p.activeVersion ?? latest) || null;
  return { active, latest };
}

/**
 * The status line: "v3 active", "v3 active · v4 saved, not active",
 * "Disabled · latest v4".
 * @param {Parameters<typeof versionsOf>[0]} p
 */
export function statusLine(p) {
  const { active, latest } = versionsOf(p);
  if (active === null) return latest ? `Disabled · latest v${latest}` : 'Disabled';
  if (latest > active) return `v${active} active · v${latest} saved, not active`;
  return `v${active} active`;
}

/**
 * The saved version that is not live yet, which an "Activate vN" button
 * puts live: the latest when the playbook is active at an older one, else
 * null.
 * @param {Parameters<typeof versionsOf>[0]} p
 */
export function pendingVersion(p) {
  const { active, latest } = versionsOf(p);
  return active !== null && latest > active ? latest : null;
}
