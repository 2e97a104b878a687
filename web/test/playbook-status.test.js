// The playbook's status line (static/assets/playbook-status.js), shown in
// the list and on the playbook page: issue 12, a save does not go live.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pendingVersion, statusLine, versionsOf } from '../static/assets/playbook-status.js';

describe('statusLine()', () => {
  it('says an active playbook runs its activated version, not a later save', () => {
    const p = { status: 'active', activeVersion: 3, latestVersion: 4, currentVersion: 4 };
    assert.equal(statusLine(p), 'v3 active · v4 saved, not active');
    assert.equal(pendingVersion(p), 4);
  });

  it('says only the active version when it is the latest', () => {
    const p = { status: 'active', activeVersion: 2, latestVersion: 2, currentVersion: 2 };
    assert.equal(statusLine(p), 'v2 active');
    assert.equal(pendingVersion(p), null);
  });

  it('names an older version rolled back to', () => {
    assert.equal(statusLine({ status: 'active', activeVersion: 1, latestVersion: 5 }), 'v1 active · v5 saved, not active');
  });

  it('says disabled, with the latest version, when nothing runs', () => {
    const p = { status: 'disabled', activeVersion: null, latestVersion: 4, currentVersion: 4 };
    assert.equal(statusLine(p), 'Disabled · latest v4');
    assert.equal(pendingVersion(p), null);
    assert.deepEqual(versionsOf(p), { active: null, latest: 4 });
    assert.equal(statusLine({ status: 'disabled' }), 'Disabled');
  });

  it('reads an answer without activeVersion or latestVersion (an older gateway) as running the latest', () => {
    assert.equal(statusLine({ status: 'active', currentVersion: 3 }), 'v3 active');
    assert.deepEqual(versionsOf({ status: 'active', currentVersion: 3 }), { active: 3, latest: 3 });
  });
});
