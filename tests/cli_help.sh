#!/usr/bin/env bash
# Every option a command's --help shows (its usage lines and its option
# list) is in that command's row of README's "Command line reference"
# (the first cell, the synopsis), and every option the row shows is in the
# --help.  With tools/args.h, --help comes from the table the command
# parses with, so this keeps the README honest against the code.
set -euo pipefail
: "${NFLOW_BIN:?}" "${NFLOW_SOURCE_ROOT:?}"
exec "${PYTHON:-/usr/bin/python3}" - "$NFLOW_BIN" "$NFLOW_SOURCE_ROOT/README.md" <<'PY'
import re, subprocess, sys

nflow, readme = sys.argv[1], sys.argv[2]
commands = ["up", "keys", "index", "search", "delete", "status", "compact", "segment build",
            "segment search", "segment info", "segment verify", "segment repair", "segment compact",
            "check-pod",
            "bench limits", "bench scan", "bench flow"]
OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")

def help_options(cmd):
    p = subprocess.run([nflow] + cmd.split() + ["--help"], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        sys.exit(f"FAIL: nflow {cmd} --help exited {p.returncode}: {p.stderr.strip()}")
    opts, in_usage = set(), False
    for line in p.stdout.splitlines():
        if line.startswith("usage:"):
            in_usage = True
        elif not line.strip():
            in_usage = False
        if in_usage:
            opts |= set(OPT.findall(line))
        else:
            # an option line: "  -c, --clients N   what it does"
            m = re.match(r"^\s{2,}((?:-[a-zA-Z]|--[a-z][\w-]*)(?:,\s*(?:-[a-zA-Z]|--[a-z][\w-]*))*)", line)
            if m:
                opts |= set(OPT.findall(m.group(1)))
    opts -= {"-h", "--help"}
    return opts

def readme_rows():
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^## Command line reference\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        sys.exit("FAIL: README.md has no '## Command line reference' section")
    rows = {}
    for line in m.group(1).splitlines():
        if not line.startswith("| `nflow "):
            continue
        first = re.split(r"(?<!\\)\|", line)[1].strip().strip("`").replace("\\|", "|")
        key = max((c for c in commands if first.startswith(f"nflow {c} ") or first == f"nflow {c}"),
                  key=len, default=None)
        if key is None:
            sys.exit(f"FAIL: README row for an unknown command: {first}")
        rows.setdefault(key, set()).update(OPT.findall(first))
    return rows

rows = readme_rows()
bad = 0
for cmd in commands:
    have = help_options(cmd)
    if cmd not in rows:
        print(f"FAIL: README's command reference has no row for `nflow {cmd}`")
        bad += 1
        continue
    doc = rows[cmd]
    for o in sorted(have - doc):
        print(f"FAIL: nflow {cmd}: {o} is in --help but not in README's command reference")
        bad += 1
    for o in sorted(doc - have):
        print(f"FAIL: nflow {cmd}: {o} is in README's command reference but not in --help")
        bad += 1
    print(f"nflow {cmd}: {' '.join(sorted(have))}")
sys.exit(1 if bad else 0)
PY
