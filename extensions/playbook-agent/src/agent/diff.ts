// A small line diff for approval cards: unchanged lines far from a change
// are folded. Lines are prefixed "+ ", "- " or "  "; folds are "@@ … @@".

const MAX_CELLS = 4_000_000;
const CONTEXT = 3;

export function lineDiff(before: string, after: string, maxLines = 400): string {
  const a = splitLines(before);
  const b = splitLines(after);
  let ops: string[];
  if (a.length * b.length > MAX_CELLS) {
    ops = [...a.map((l) => '- ' + l), ...b.map((l) => '+ ' + l)];
  } else {
    ops = lcsDiff(a, b);
  }
  const out = fold(ops);
  if (out.length > maxLines) return out.slice(0, maxLines).join('\n') + `\n@@ … ${out.length - maxLines} more lines @@`;
  return out.join('\n');
}

/** The content of a new file, as all-added lines (cut after maxLines). */
export function addedLines(content: string, maxLines = 400): string {
  const lines = splitLines(content).map((l) => '+ ' + l);
  if (lines.length > maxLines) return lines.slice(0, maxLines).join('\n') + `\n@@ … ${lines.length - maxLines} more lines @@`;
  return lines.join('\n');
}

export function countLines(s: string): number {
  if (s === '') return 0;
  return s.split(/\r\n|\r|\n/).length - (/(\r\n|\r|\n)$/.test(s) ? 1 : 0);
}

function splitLines(s: string): string[] {
  if (s === '') return [];
  const lines = s.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function lcsDiff(a: string[], b: string[]): string[] {
  // Trim the common head and tail first: most edits are local.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const n = x.length;
  const m = y.length;
  const dp: Uint32Array[] = [];
  for (let i = 0; i <= n; i++) dp.push(new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
    }
  }
  const mid: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      mid.push('  ' + x[i]);
      i++;
      j++;
    } else if (dp[i + 1][j] >= dp[i][j + 1]) {
      mid.push('- ' + x[i++]);
    } else {
      mid.push('+ ' + y[j++]);
    }
  }
  while (i < n) mid.push('- ' + x[i++]);
  while (j < m) mid.push('+ ' + y[j++]);
  return [...a.slice(0, head).map((l) => '  ' + l), ...mid, ...a.slice(a.length - tail).map((l) => '  ' + l)];
}

function fold(ops: string[]): string[] {
  const changed = ops.map((o) => !o.startsWith('  '));
  const keep = ops.map(() => false);
  changed.forEach((c, i) => {
    if (!c) return;
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(ops.length - 1, i + CONTEXT); k++) keep[k] = true;
  });
  const out: string[] = [];
  let skipped = 0;
  ops.forEach((o, i) => {
    if (keep[i]) {
      if (skipped) out.push(`@@ ${skipped} unchanged line${skipped === 1 ? '' : 's'} @@`);
      skipped = 0;
      out.push(o);
    } else {
      skipped++;
    }
  });
  if (skipped) out.push(`@@ ${skipped} unchanged line${skipped === 1 ? '' : 's'} @@`);
  return out;
}
