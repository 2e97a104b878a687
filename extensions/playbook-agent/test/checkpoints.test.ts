import { afterEach, beforeEach, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Checkpoints } from '../src/agent/checkpoints';
import { Folder } from '../src/agent/folder';
import { newTask, TaskStore } from '../src/agent/history';

describe('Checkpoints', () => {
  let dir: string;
  let cps: Checkpoints;
  const read = (p: string) => readFileSync(path.join(dir, p), 'utf8');
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pbs-cp-'));
    writeFileSync(path.join(dir, 'playbook.py'), 'v1\n');
    mkdirSync(path.join(dir, 'lib'));
    writeFileSync(path.join(dir, 'lib', 'h.py'), 'h1\n');
    mkdirSync(path.join(dir, '.agent', 'tasks'), { recursive: true });
    writeFileSync(path.join(dir, '.agent', 'tasks', 't.json'), '{}');
    cps = new Checkpoints(new Folder(dir));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('snapshots the folder into .agent/checkpoints/<n>/, leaving .agent/ out', async () => {
    const a = await cps.create('first');
    const b = await cps.create('second');
    assert.deepEqual([a.n, b.n], [1, 2]);
    assert.deepEqual(a.files, ['lib/h.py', 'playbook.py']);
    assert.equal(read('.agent/checkpoints/1/playbook.py'), 'v1\n');
    assert.equal(read('.agent/checkpoints/1/lib/h.py'), 'h1\n');
    assert.equal(existsSync(path.join(dir, '.agent/checkpoints/1/.agent')), false);
    assert.deepEqual((await cps.list()).map((c) => c.label), ['first', 'second']);
  });

  it('restores an earlier checkpoint, removing newer files, after saving the present state', async () => {
    await cps.create('before');
    writeFileSync(path.join(dir, 'playbook.py'), 'v2\n');
    writeFileSync(path.join(dir, 'README.md'), 'new\n');
    rmSync(path.join(dir, 'lib', 'h.py'));
    const { safety } = await cps.restore(1);
    assert.equal(read('playbook.py'), 'v1\n');
    assert.equal(read('lib/h.py'), 'h1\n');
    assert.equal(existsSync(path.join(dir, 'README.md')), false);
    assert.equal(read('.agent/tasks/t.json'), '{}', '.agent/ is untouched');
    // Nothing is lost: the state before the restore is checkpoint 2.
    assert.equal(safety.n, 2);
    assert.equal(read('.agent/checkpoints/2/playbook.py'), 'v2\n');
    assert.equal(read('.agent/checkpoints/2/README.md'), 'new\n');
    await cps.restore(2);
    assert.equal(read('playbook.py'), 'v2\n');
  });

  it('refuses an unknown checkpoint', async () => {
    await assert.rejects(cps.restore(7), /checkpoint 7 does not exist/);
  });
});

describe('TaskStore', () => {
  it('keeps tasks in .agent/tasks/<id>.json and finds the latest', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pbs-tasks-'));
    try {
      const store = new TaskStore(new Folder(dir));
      const a = { ...newTask(new Date('2026-01-01T00:00:00Z')), title: 'a', updatedAt: '2026-01-01T00:00:00Z' };
      const b = { ...newTask(new Date('2026-01-02T00:00:00Z')), title: 'b', updatedAt: '2026-01-02T00:00:00Z' };
      await store.save(a);
      await store.save(b);
      writeFileSync(path.join(dir, '.agent', 'tasks', 'broken.json'), '{oops');
      assert.ok(existsSync(path.join(dir, '.agent', 'tasks', `${a.id}.json`)));
      assert.equal((await store.latest())?.title, 'b');
      assert.equal((await store.list()).length, 2);
      assert.equal(await store.load('../../etc/passwd'), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
