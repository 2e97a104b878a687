import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { networkReason } from '../src/agent/network';
import { ChatClient, LlmError } from '../src/agent/llm';
import { GatewayClient, GatewayError } from '../src/gateway';
import { closedAddress } from './server';

describe('networkReason (one function for the gateway and the model clients)', () => {
  const withCause = (cause: unknown) => Object.assign(new TypeError('fetch failed'), { cause });

  it('names the cause\'s code', () => {
    assert.equal(networkReason(withCause(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))), 'ECONNREFUSED');
  });
  it('else the cause\'s message', () => {
    assert.equal(networkReason(withCause(new Error('other side closed'))), 'other side closed');
    assert.equal(networkReason(withCause(Object.assign(new Error('no code'), { code: '' }))), 'no code');
  });
  it('else the error\'s own message, or the value', () => {
    assert.equal(networkReason(new Error('boom')), 'boom');
    assert.equal(networkReason(withCause('not an error')), 'fetch failed');
    assert.equal(networkReason('plain'), 'plain');
    assert.equal(networkReason(undefined), 'undefined');
  });
  it('reads a real refused connection, and both clients report it the same way', async () => {
    const url = await closedAddress();
    const err = await fetch(url).then(() => undefined, (e: unknown) => e);
    assert.equal(networkReason(err), 'ECONNREFUSED');

    const gw = new GatewayClient({ PLAYBOOK_GATEWAY_URL: url, PLAYBOOK_GATEWAY_TOKEN: 't' });
    const fromGateway = await gw.currentSession().then(() => undefined, (e: unknown) => e);
    assert.ok(fromGateway instanceof GatewayError && fromGateway.code === 'network');
    assert.equal(fromGateway.message, 'ECONNREFUSED');

    const chat = new ChatClient((body, signal) => gw.chatCompletions(body, signal));
    const fromModel = await chat.complete({ messages: [{ role: 'user', content: 'hi' }] }).then(() => undefined, (e: unknown) => e);
    assert.ok(fromModel instanceof LlmError && fromModel.kind === 'network');
    assert.equal(fromModel.message, 'ECONNREFUSED');
  });
});
