#!/usr/bin/env python3
"""check_includes.py - keep scrimp's dependencies one-way, by reading every quoted #include.

The rules (README, Layout):
  - layers: pipelines -> models -> host -> kernels. A file may include its own layer or one below it,
    never one above (pipelines may include host directly; models may include kernels).
  - inside host/: a subsystem folder includes itself and host/core, plus the subsystems that
    ALLOWED below names for it; host/core includes only host/core. Below host, kernels/ is open
    to every host subsystem.
  - nothing includes bench/ or tests/, except bench/ and tests/ themselves.
  - a quoted include names a file that exists, written from the repository root.

Usage: check_includes.py [REPO_ROOT]. Prints one line per violation and exits 1 when there is any;
prints a summary line and exits 0 otherwise.
"""
import os
import re
import sys

# host subsystem -> the other host subsystems it may include (besides itself and core).
ALLOWED = {
    "core": set(),
    "ops": set(),
    "kafka": set(),
    "metrics": set(),
    "gemini": set(),
    "cache": set(),
}

LAYERS = {"kernels": 0, "host": 1, "models": 2, "pipelines": 3}
ROOTS = ("kernels", "host", "models", "pipelines", "bench", "tests")
EXTS = (".c", ".h", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def top(path):
    return path.split("/", 1)[0]


def host_sub(path):
    """host/<sub>/... -> sub; a file directly in host/ has no subsystem (None)."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


def check_edge(src, dst):
    """The reason src may not include dst, or None when it may."""
    s, d = top(src), top(dst)
    if d in ("bench", "tests"):
        return None if s == d else f"nothing outside {d}/ includes {d}/"
    if s in ("bench", "tests"):
        return None
    if d not in LAYERS:
        return f"{d}/ is not a source layer"
    if LAYERS[d] > LAYERS[s]:
        return f"{s}/ may not include {d}/ (pipelines -> models -> host -> kernels)"
    if s == "host" and d == "host":
        ss, ds = host_sub(src), host_sub(dst)
        if ss is None or ds is None:
            return "host/ files live in a subsystem folder"
        if ss not in ALLOWED:
            return f"host/{ss}/ is not a known subsystem (add it to ALLOWED in {sys.argv[0]})"
        if ds != ss and ds != "core" and ds not in ALLOWED[ss]:
            return f"host/{ss}/ may include host/core/ and {sorted(ALLOWED[ss]) or 'no other subsystem'}, not host/{ds}/"
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    bad, edges, files = [], 0, 0
    for r in ROOTS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, r)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("fixtures", "__pycache__", "results"))
            for name in sorted(filenames):
                if not name.endswith(EXTS):
                    continue
                full = os.path.join(dirpath, name)
                src = os.path.relpath(full, root).replace(os.sep, "/")
                files += 1
                with open(full, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        dst = m.group(1)
                        edges += 1
                        if top(dst) not in ROOTS:
                            bad.append(f"{src}:{lineno}: \"{dst}\": write includes from the repository root")
                            continue
                        if not os.path.isfile(os.path.join(root, dst)):
                            bad.append(f"{src}:{lineno}: \"{dst}\": no such file")
                            continue
                        why = check_edge(src, dst)
                        if why:
                            bad.append(f"{src}:{lineno}: \"{dst}\": {why}")
    for b in bad:
        print(b)
    print(f"check_includes: {files} files, {edges} includes, {len(bad)} pointing the wrong way")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
