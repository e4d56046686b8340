#!/usr/bin/env python3
"""The layer check: each top-level module of the engine imports only from its own layer or
the layers below it, and no two top-level modules (of the engine or the SDK) import each
other in a circle. Run by `.ci/run`; prints every offending file and line and exits 1.

    python3 scripts/check-layers.py             # check engine/src and sdk/src
    python3 scripts/check-layers.py --self-test # prove the check catches both kinds

A reference is any `crate::<module>` path (in a `use`, a `use crate::{a, b}` group, or
inline in code) and any `super::` path that climbs out of its top-level module. Comments
are ignored. The layer map is below (docs/architecture.md explains it); a new top-level
module must be given a layer here, or the check fails.
"""

import os
import re
import sys
import tempfile

# Engine layers, bottom to top. Within a layer a module may import another of the same
# layer, as long as no circle forms.
ENGINE_LAYERS = {
    0: ["event", "finding", "clock", "telemetry", "net", "config"],
    1: ["store"],
    2: ["ledger", "ingest"],
    3: ["rules"],
    4: ["detect"],
    5: ["alerts", "route", "respond", "auth", "cluster", "deploy", "inputs", "forward", "report"],
    6: ["api", "cli"],
    7: ["app"],
}
LAYER_NAMES = {0: "vocabulary", 1: "store", 2: "ledger/ingest", 3: "rules", 4: "detect", 5: "services",
               6: "surfaces", 7: "app"}

# The crate root, and the `vigil` binary (src/bin/vigil: the command line, above every layer).
ROOT_FILES = {"lib.rs", "bin"}


def strip_comments(text):
    """Blanks out `//` comments and `/* */` blocks, keeping line numbers and string literals
    (a `//` inside a string is kept: strings are skipped over)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and i + 2 < n and text[i + 2] == "'":
            out.append("   ")  # a char literal such as '"'
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def group_heads(body):
    """Top-level names of a `{a, b::c, d::{e, f}}` use group."""
    names, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(cur)
            cur = ""
            continue
        if depth == 0:
            cur += ch
    names.append(cur)
    return [m.group(1) for m in (re.match(r"\s*(\w+)", x) for x in names) if m]


def module_path(src, path):
    """`engine/src/store/sqlite.rs` -> ["store", "sqlite"]; `store.rs` -> ["store"]."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def references(src, path):
    """(line, top-level module referred to) for every path out of the file's own module."""
    text = strip_comments(open(path, encoding="utf-8").read())
    me = module_path(src, path)
    found = []

    def line_of(pos):
        return text.count("\n", 0, pos) + 1

    for m in re.finditer(r"(?<![\w$])crate::(\{[^;]*?\}|\w+)", text):
        target = m.group(1)
        heads = group_heads(target[1:-1]) if target.startswith("{") else [target]
        found += [(line_of(m.start()), h) for h in heads]
    for m in re.finditer(r"(?<![\w:])((?:super::)+)(\{[^;]*?\}|\w+)", text):
        ups = m.group(1).count("super::")
        # A file's own module is `me`; `super` of a top-level file is the crate root.
        base = me[: len(me) - ups]
        if base:
            continue  # still inside its top-level module
        target = m.group(2)
        heads = group_heads(target[1:-1]) if target.startswith("{") else [target]
        found += [(line_of(m.start()), h) for h in heads]
    return found


def scan(src, skip=ROOT_FILES):
    """Edges between top-level modules: {(from, to): [(file, line), ...]}."""
    tops = set()
    for name in os.listdir(src):
        if name in skip:
            continue
        if name.endswith(".rs"):
            tops.add(name[:-3])
        elif os.path.isdir(os.path.join(src, name)):
            tops.add(name)
    edges = {}
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            if not f.endswith(".rs") or os.path.relpath(path, src).split(os.sep)[0] in skip:
                continue
            me = module_path(src, path)[0]
            for line, target in references(src, path):
                if target in tops and target != me:
                    edges.setdefault((me, target), []).append((path, line))
    return tops, edges


def cycles(tops, edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {t: sorted({b for (a, b) in edges if a == t}) for t in tops}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for t in sorted(tops):
        if t not in index:
            visit(t)
    return out


def check(src, layers, label):
    """Returns the list of problems (strings) of one crate."""
    problems = []
    tops, edges = scan(src)
    if layers is not None:
        layer_of = {m: n for n, ms in layers.items() for m in ms}
        for t in sorted(tops - set(layer_of)):
            problems.append(f"{src}/{t}.rs: top-level module `{t}` has no layer in scripts/check-layers.py")
        for (a, b), sites in sorted(edges.items()):
            if a in layer_of and b in layer_of and layer_of[b] > layer_of[a]:
                la, lb = layer_of[a], layer_of[b]
                for path, line in sites:
                    problems.append(
                        f"{path}:{line}: `{a}` (L{la} {LAYER_NAMES.get(la, '')}) imports `{b}` "
                        f"(L{lb} {LAYER_NAMES.get(lb, '')}), a layer above it"
                    )
    for comp in cycles(tops, edges):
        problems.append(f"{label}: import circle between top-level modules {', '.join(comp)}:")
        for (a, b), sites in sorted(edges.items()):
            if a in comp and b in comp:
                path, line = sites[0]
                problems.append(f"  {os.path.relpath(path)}:{line}: `{a}` imports `{b}`" + (
                    f" (and {len(sites) - 1} more)" if len(sites) > 1 else ""))
    return problems


def self_test():
    """Builds a small crate with one upward import and one circle; both must be reported."""
    with tempfile.TemporaryDirectory() as d:
        files = {
            "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
            "a.rs": "// use crate::b::X; (a comment: ignored)\nuse crate::{d::Y,\n    b::Z};\n",
            "b.rs": "pub fn f() { crate::a::g(); }\n",
            "c.rs": "mod inner;\n",
            "c/inner.rs": "use super::super::d::W;\nconst S: &str = \"crate::a::nothing\";\n",
            "d.rs": "pub struct Y;\n",
        }
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        layers = {0: ["d", "c"], 1: ["a", "b"]}
        got = check(d, layers, "self-test")
        text = "\n".join(got)
        assert not [p for p in got if "a layer above it" in p], text  # a -> d, c -> d: downward
        assert "import circle between top-level modules a, b" in text, text
        assert "a.rs:2: `a` imports `b`" in text, text
        assert "b.rs:1: `b` imports `a`" in text, text
        got = check(d, {0: ["c", "a", "b"], 1: ["d"]}, "self-test")
        text = "\n".join(got)
        assert "c/inner.rs:1: `c` (L0" in text and "imports `d` (L1" in text, text
        assert "a.rs:2: `a` (L0" in text, text
        # The comment (a.rs:1) and the string (c/inner.rs:2) are not references.
        assert not any("a.rs:1:" in p or "inner.rs:2:" in p for p in got), text
    print("check-layers self-test: ok (an upward import and a circle are both reported)")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = check(os.path.join(repo, "engine", "src"), ENGINE_LAYERS, "engine")
    problems += check(os.path.join(repo, "sdk", "src"), None, "sdk")
    if problems:
        print("Layer check failed (see docs/architecture.md):", file=sys.stderr)
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    print("Layer check: ok (engine layers L0-L7 import only downward; no import circle in the engine or the SDK)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
