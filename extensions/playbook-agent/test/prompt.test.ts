// The system prompt's integration profiles section (issue 13, part 6): the
// agent sees the tenant's real list and, when a plan needs a profile that
// does not exist, says which one to create and points to the Add
// integration link at the top of the IDE page.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemPrompt } from '../src/agent/prompt';

describe('systemPrompt() integration profiles', () => {
  it('lists each profile with its base URL and method, never a secret', () => {
    const p = systemPrompt({ mode: 'plan', profiles: [{ name: 'VirusTotal', baseUrl: 'https://www.virustotal.com/api/v3', authMethod: 'api_key' }] });
    assert.match(p, /- "VirusTotal": base URL https:\/\/www\.virustotal\.com\/api\/v3, authentication api_key/);
    assert.doesNotMatch(p, /secretsSet|clientSecret"/);
  });

  it('tells the agent to name the missing profile and point to the Add integration link', () => {
    for (const profiles of [undefined, [], [{ name: 'Jira', baseUrl: 'https://jira.example', authMethod: 'basic' }]]) {
      const p = systemPrompt({ mode: 'plan', profiles });
      assert.match(p, /say exactly which profile to create/);
      assert.match(p, /\*\*Add integration\*\* link at the top of this page/);
      assert.match(p, /Automation > Integration profiles > Add integration/);
      assert.match(p, /OAuth2 client credentials: token endpoint, client ID, client secret, scopes/);
      assert.match(p, /Hawk: key ID, algorithm, key/);
    }
  });
});
