#!/usr/bin/env python3
"""Rewrites the README's configuration table from internal/config's
Settings(), so the two cannot drift (a Go test checks every setting has a
row)."""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "internal/config/config.go").read_text()
rows = re.findall(r'\{"([A-Z_]+)", "((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\}', src)
table = "| setting | default | meaning |\n|---|---|---|\n"
for env, default, text in rows:
    shown = f"`{default}`" if default else "(empty)"
    table += f"| `{env}` | {shown} | {text.replace('|', '/')} |\n"
readme = root / "README.md"
s = readme.read_text()
start = s.index("| setting | default | meaning |")
end = s.index("\nDurations are Go durations")
readme.write_text(s[:start] + table + s[end:])
