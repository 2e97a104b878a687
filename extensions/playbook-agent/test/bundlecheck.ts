// Local checks of a playbook bundle, the same rules as the gateway's Save:
// python3's ast parses each .py file, imports are the standard library,
// the bundle's own modules or playbook_sdk, playbook.py defines
// run(alert, ctx), manifest.json is valid, README.md has a mermaid block.
// When the gateway's own checker (internal/playbook/checker.py) is in the
// repository, it runs too.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { ValidationReport } from '../src/agent/executor';
import type { ProblemLine } from '../src/agent/protocol';

export interface BundleFile {
  path: string;
  content: string;
}

/** The repository's gateway checker, when this extension sits in the repository. */
export const GATEWAY_CHECKER = path.resolve(__dirname, '../../../../internal/playbook/checker.py');

const IMPORT_CHECK = `
import ast, json, sys
req = json.loads(sys.stdin.read())
allowed = set(sys.stdlib_module_names) | {"playbook_sdk"} | set(req["own"])
out = []
for f in req["files"]:
    try:
        tree = ast.parse(f["source"], filename=f["path"])
    except SyntaxError as e:
        out.append({"path": f["path"], "line": e.lineno or 0, "message": "syntax error: %s" % e.msg})
        continue
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for n in names:
            if n.split(".")[0] not in allowed:
                out.append({"path": f["path"], "line": node.lineno, "message": "imports %r, not the standard library" % n})
    if f["path"] == "playbook.py":
        runs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"]
        if not runs:
            out.append({"path": f["path"], "line": 0, "message": "defines no run(alert, ctx)"})
        elif [a.arg for a in runs[-1].args.args] != ["alert", "ctx"]:
            out.append({"path": f["path"], "line": runs[-1].lineno, "message": "run must take (alert, ctx)"})
print(json.dumps(out))
`;

/** python3 -c "import ast,sys; ast.parse(sys.stdin.read())": true when the source parses. */
export function astParses(source: string): boolean {
  const r = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], { input: source });
  return r.status === 0;
}

export function checkBundle(files: BundleFile[]): ProblemLine[] {
  const problems: ProblemLine[] = [];
  const byPath = new Map(files.map((f) => [f.path, f.content]));
  const py = files.filter((f) => f.path.endsWith('.py'));
  const own = py.map((f) => (f.path.includes('/') ? f.path.split('/')[0] : f.path.slice(0, -3)));
  if (!byPath.has('playbook.py')) problems.push({ path: 'playbook.py', message: 'is missing' });
  for (const f of py) {
    if (!astParses(f.content)) problems.push({ path: f.path, message: 'python3 ast.parse fails' });
  }
  const out = execFileSync('python3', ['-c', IMPORT_CHECK], { input: JSON.stringify({ files: py.map((f) => ({ path: f.path, source: f.content })), own }) });
  problems.push(...(JSON.parse(out.toString()) as ProblemLine[]));
  const main = byPath.get('playbook.py');
  if (main !== undefined) {
    const lines = main.split('\n').length - (main.endsWith('\n') ? 1 : 0);
    if (lines > 5000) problems.push({ path: 'playbook.py', message: `${lines} lines` });
  }
  const manifest = byPath.get('manifest.json');
  if (manifest !== undefined) problems.push(...checkManifest(manifest));
  const readme = byPath.get('README.md');
  if (readme === undefined) problems.push({ path: 'README.md', message: 'is missing' });
  else if (!/^ {0,3}```+\s*mermaid\s*\n[\s\S]*?flowchart[\s\S]*?\n {0,3}```/m.test(readme)) problems.push({ path: 'README.md', message: 'has no mermaid flowchart block' });
  if (existsSync(GATEWAY_CHECKER) && py.length) {
    const allowed = JSON.parse(execFileSync('python3', ['-c', 'import sys, json; print(json.dumps(sorted(sys.stdlib_module_names)))']).toString()) as string[];
    const r = execFileSync('python3', ['-I', '-S', GATEWAY_CHECKER], {
      input: JSON.stringify({ files: py.map((f) => ({ path: f.path, source: f.content })), main: 'playbook.py', allowed: [...allowed, 'playbook_sdk', ...own] }),
    });
    const res = JSON.parse(r.toString()) as { errors: ProblemLine[] };
    problems.push(...res.errors.map((e) => ({ ...e, message: `gateway checker: ${e.message}` })));
  }
  return problems;
}

export function checkManifest(text: string): ProblemLine[] {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    return [{ path: 'manifest.json', message: `not JSON: ${(err as Error).message}` }];
  }
  const p: ProblemLine[] = [];
  if (typeof m.name !== 'string' || !m.name.trim()) p.push({ path: 'manifest.json', message: 'no name' });
  if (typeof m.description !== 'string') p.push({ path: 'manifest.json', message: 'no description' });
  if (!Array.isArray(m.integrations) || !m.integrations.every((i) => typeof i === 'string')) p.push({ path: 'manifest.json', message: 'integrations must be strings' });
  if (m.entrypoint !== 'playbook.py:run') p.push({ path: 'manifest.json', message: 'entrypoint must be playbook.py:run' });
  return p;
}

/** The folder's bundle files (leaving out .agent/ and caches). */
export function readBundle(dir: string, rel = ''): BundleFile[] {
  const out: BundleFile[] = [];
  for (const name of readdirSync(path.join(dir, rel))) {
    if (name === '.agent' || name === '__pycache__') continue;
    const p = rel ? `${rel}/${name}` : name;
    if (statSync(path.join(dir, p)).isDirectory()) out.push(...readBundle(dir, p));
    else out.push({ path: p, content: readFileSync(path.join(dir, p), 'utf8') });
  }
  return out;
}

/** A stand-in for the gateway's validate route, for the agent loop's tests. */
export function localValidate(dir: string): ValidationReport {
  const errors = checkBundle(readBundle(dir));
  const main = existsSync(path.join(dir, 'playbook.py')) ? readFileSync(path.join(dir, 'playbook.py'), 'utf8') : '';
  return { passed: errors.length === 0, errors, warnings: [], lines: main ? main.split('\n').length - 1 : 0 };
}

/** Runs playbook.run(alert, RecordingContext(responses)) in dir with python3; returns its result and the recorded calls. */
export function runPlaybook(dir: string, alertFile: string, responses: Record<string, unknown> = {}): { result: Record<string, unknown>; calls: unknown[][] } {
  const script = `
import json, sys
sys.path.insert(0, ".")
import playbook, playbook_sdk
req = json.loads(sys.stdin.read())
responses = {k: (tuple(v) if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) else v) for k, v in req["responses"].items()}
ctx = playbook_sdk.RecordingContext(responses)
with open(req["alert"]) as f:
    alert = json.load(f)
result = playbook.run(alert, ctx)
print(json.dumps({"result": result, "calls": ctx.calls}))
`;
  const out = execFileSync('python3', ['-I', '-c', script], { cwd: dir, input: JSON.stringify({ alert: alertFile, responses }) });
  return JSON.parse(out.toString()) as { result: Record<string, unknown>; calls: unknown[][] };
}
