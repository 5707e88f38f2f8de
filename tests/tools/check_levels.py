#!/usr/bin/env python3
"""The include/mae tree by levels: a header includes headers of its own folder or of a folder
listed before it, never after (docs/ARCHITECTURE.md). Prints each violation; exit 1 if any."""
import os
import re
import sys

LEVELS = ["core", "kernels", "layers", "io", "models", "data", "training", "inference", "datasets", "figures"]
UMBRELLAS = {"mae.hpp", "data.hpp"}  # include everything

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "include", "mae")
bad = []
for folder, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".hpp"):
            continue
        path = os.path.join(folder, name)
        here = os.path.relpath(folder, root)
        if here == ".":
            if name not in UMBRELLAS:
                bad.append(f"{path}: a header outside the level folders")
            continue
        if here not in LEVELS:
            bad.append(f"{path}: folder '{here}' is not a level ({', '.join(LEVELS)})")
            continue
        for line in open(path):
            m = re.match(r'#include "([^"]+)"', line)
            if not m:
                continue
            target = os.path.normpath(os.path.join(folder, m.group(1)))
            level = os.path.relpath(os.path.dirname(target), root)
            if level == "." or level not in LEVELS:
                bad.append(f"{path}: includes {m.group(1)}, outside the levels")
            elif LEVELS.index(level) > LEVELS.index(here):
                bad.append(f"{path}: includes {m.group(1)} ({level}/ is above {here}/)")
for b in bad:
    print(b)
if not bad:
    print(f"include/mae: every include points down ({' < '.join(LEVELS)})")
sys.exit(1 if bad else 0)
