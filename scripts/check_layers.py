#!/usr/bin/env python3
"""Checks that mmapio's code uses code only downwards, by the layers written
in scripts/layers.conf (the format is described at the top of that file).

Usage:
    check_layers.py [--source DIR] [--build DIR] [--conf FILE]
    check_layers.py --self-test

What fails:
  * a .c/.h file under a component's folder that matches none of its layers
    ("daemon/foo.c: in no layer of daemon");
  * an `#include` of a header of a higher layer of the same component, of a
    component not in its `uses`, or of an external header it may not use
    (reported as file:line, the header and both layers or components);
  * an `#include "..."` that names no project header and no external one,
    or more than one project header;
  * a cycle among units (a folder's name.c + name.h): edge A -> B when A.c
    or A.h includes B.h, reported as a path A -> B -> ... -> A;
  * with --build DIR (a meson build directory): the same two checks on the
    link-level call graph. DIR/compile_commands.json maps objects to their
    sources; `nm` lists what each object defines and what it leaves
    undefined, and each undefined symbol defined by another project unit is
    a call edge (calls or data references, including those made through a
    prototype written locally instead of including the header). Objects of
    unchecked folders are skipped; the code generated from an external
    header (mmapio.pb-c.c) counts as that header.

Exit status: 0 with "layers: N files, M include edges, K call edges, no
violation"; 1 with every violation listed (on stdout) and a count; 2 when
the rules file or the build directory cannot be read.

--self-test builds small trees in a temporary directory, checks them with
the real rules file, and exits non-zero if any verdict is not the expected
one. Standard library only.
"""
import argparse
import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONF = os.path.join(HERE, "layers.conf")
CHECKED_EXT = (".c", ".h")
ARROW = " \u2192 "


class ConfError(Exception):
    pass


# ---------------------------------------------------------------- rules file

def glob_regex(pattern):
    """`*` within a folder, `**` across folders, trailing `/` = below it."""
    if pattern.endswith("/"):
        pattern += "**"
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class Layer:
    def __init__(self, name, rank, patterns, line):
        self.name = name
        self.rank = rank
        self.patterns = patterns
        self.regexes = [glob_regex(p) for p in patterns]
        self.line = line

    def matches(self, path):
        return any(r.match(path) for r in self.regexes)


class Component:
    def __init__(self, name, roots, line):
        self.name = name
        self.roots = roots          # "dir/" or "file"
        self.layers = []
        self.uses = []
        self.implemented_by = []
        self.line = line

    def owns(self, path):
        return any(path.startswith(r) if r.endswith("/") else path == r
                   for r in self.roots)

    def layer_of(self, path):
        found = [l for l in self.layers if l.matches(path)]
        return found


class Rules:
    def __init__(self):
        self.components = collections.OrderedDict()
        self.externals = {}         # header name -> set of component names
        self.unchecked = []         # folder prefixes
        self.per_system = []        # regexes of folders built one per system

    def component_of(self, path):
        for c in self.components.values():
            if c.owns(path):
                return c
        return None

    def is_per_system(self, path):
        folder = os.path.dirname(path)
        return any(r.match(folder) for r in self.per_system)

    def is_unchecked(self, path):
        return any(path.startswith(u) for u in self.unchecked)

    def may_use(self, user, used):
        return used is user or used.name in user.uses


def norm_folder(word):
    word = os.path.normpath(word).replace(os.sep, "/")
    return word + "/"


def parse_rules(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfError("%s: %s" % (path, e.strerror))
    rules = Rules()
    comp = None
    where = lambda n: "%s:%d" % (path, n)
    for n, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        kw, args = words[0], words[1:]
        if kw == "component":
            if len(args) < 2:
                raise ConfError(where(n) + ": component NAME ROOT...")
            name = args[0]
            if name in rules.components:
                raise ConfError(where(n) + ": component %s twice" % name)
            roots = [norm_folder(a) if a.endswith("/") else
                     os.path.normpath(a).replace(os.sep, "/") for a in args[1:]]
            comp = Component(name, roots, n)
            rules.components[name] = comp
        elif kw == "layer":
            if comp is None:
                raise ConfError(where(n) + ": layer outside a component")
            if len(args) < 2:
                raise ConfError(where(n) + ": layer NAME PATTERN...")
            if any(l.name == args[0] for l in comp.layers):
                raise ConfError(where(n) + ": layer %s twice in %s"
                                % (args[0], comp.name))
            for p in args[1:]:
                if not comp.owns(p.rstrip("*").rstrip("/") + "/x") and \
                        not comp.owns(p):
                    raise ConfError(where(n) + ": pattern %s is outside "
                                    "component %s (%s)" % (
                                        p, comp.name, " ".join(comp.roots)))
            comp.layers.append(Layer(args[0], len(comp.layers), args[1:], n))
        elif kw in ("uses", "implemented-by"):
            if comp is None:
                raise ConfError(where(n) + ": %s outside a component" % kw)
            (comp.uses if kw == "uses" else comp.implemented_by).extend(args)
        elif kw == "external":
            if len(args) < 1:
                raise ConfError(where(n) + ": external HEADER COMPONENT...")
            rules.externals.setdefault(args[0], set()).update(args[1:])
        elif kw == "unchecked":
            rules.unchecked.extend(norm_folder(a) for a in args)
        elif kw == "per-system":
            rules.per_system.extend(glob_regex(a.rstrip("/")) for a in args)
        else:
            raise ConfError(where(n) + ": unknown directive %r" % kw)
    names = set(rules.components)
    for c in rules.components.values():
        if not c.layers:
            raise ConfError("%s: component %s has no layer" % (path, c.name))
        for other in c.uses + c.implemented_by:
            if other not in names:
                raise ConfError("%s: component %s names unknown component "
                                "%s" % (path, c.name, other))
    for header, users in rules.externals.items():
        for u in users:
            if u not in names:
                raise ConfError("%s: external %s names unknown component %s"
                                % (path, header, u))
    roots = [(r, c.name) for c in rules.components.values() for r in c.roots]
    for r, a in roots:
        for s, b in roots:
            if a != b and r.endswith("/") and s.startswith(r):
                raise ConfError("%s: %s (%s) lies inside %s (%s)"
                                % (path, s, b, r, a))
    return rules


# ---------------------------------------------------------------- sources

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]',
                     re.M)
CALLISH = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
EXTERN_VAR = re.compile(r"\bextern\b[^;(){}]*?\b([A-Za-z_]\w*)\s*"
                        r"(?:\[[^\]]*\]\s*)*;")


def strip_comments(text):
    """Blanks out comments (keeping newlines) and string contents."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join("\n" if ch == "\n" else " "
                               for ch in text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            # keep #include "x" intact: only skip over literals whole
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def unit_of(path):
    return os.path.splitext(path)[0]


class Tree:
    """The files under the components' and unchecked folders."""

    def __init__(self, source, rules):
        self.source = source
        self.rules = rules
        self.files = set()          # every file, relative, "/" separators
        self.by_name = collections.defaultdict(list)  # basename -> paths
        self.dirs = set()
        roots = set()
        for c in rules.components.values():
            roots.update(r for r in c.roots)
        roots.update(rules.unchecked)
        for root in sorted(roots):
            full = os.path.join(source, root)
            if os.path.isfile(full):
                self._add(root)
                continue
            for d, subdirs, names in os.walk(full):
                subdirs[:] = sorted(s for s in subdirs
                                    if not s.startswith("."))
                rel = os.path.relpath(d, source).replace(os.sep, "/")
                self.dirs.add(rel + "/")
                for name in sorted(names):
                    self._add(rel + "/" + name)
        self.checked = sorted(
            p for p in self.files
            if p.endswith(CHECKED_EXT) and not rules.is_unchecked(p)
            and rules.component_of(p) is not None)
        self._text = {}

    def _add(self, rel):
        if rel not in self.files:
            self.files.add(rel)
            self.by_name[os.path.basename(rel)].append(rel)

    def text(self, rel):
        if rel not in self._text:
            with open(os.path.join(self.source, rel), encoding="utf-8",
                      errors="replace") as f:
                self._text[rel] = strip_comments(f.read())
        return self._text[rel]

    def search_dirs(self, comp):
        """Every folder of the component and of the components it uses."""
        comps = [comp] + [self.rules.components[u] for u in comp.uses]
        out = []
        for c in comps:
            for r in c.roots:
                if r.endswith("/"):
                    out.extend(sorted(d for d in self.dirs if d.startswith(r)))
        return out

    def declared(self, rel):
        """Names a header declares (functions and extern variables)."""
        text = self.text(rel)
        return set(CALLISH.findall(text)) | set(EXTERN_VAR.findall(text))


# ---------------------------------------------------------------- checks

class Result:
    def __init__(self):
        self.violations = []
        self.lines = []              # violations and notes, in order
        self.include_edges = set()   # (file, header)
        self.call_edges = set()      # (caller unit, callee unit)
        self.files = 0

    def fail(self, msg):
        self.violations.append(msg)
        self.lines.append(msg)

    def note(self, msg):
        self.lines.append(msg)


def where_is(rules, path):
    """(component, layer) of a checked path, either may be None."""
    comp = rules.component_of(path)
    if comp is None:
        return None, None
    layers = comp.layer_of(path)
    return comp, (layers[0] if len(layers) == 1 else None)


def describe(comp, layer):
    if layer is None:
        return "component %s" % comp.name
    return "%s layer %s (%d)" % (comp.name, layer.name, layer.rank)


def judge(rules, comp, layer, tcomp, tlayer, verb):
    """None when comp/layer may use tcomp/tlayer, else why not."""
    if tcomp is comp:
        if layer is None or tlayer is None:
            return None              # already reported: in no layer
        if tlayer.rank <= layer.rank:
            return None
        return "%s may not %s %s above it" % (
            describe(comp, layer), verb, "layer %s (%d)" % (
                tlayer.name, tlayer.rank))
    if rules.may_use(comp, tcomp):
        return None
    return "%s may not %s component %s%s (%s uses only: %s)" % (
        describe(comp, layer), verb, tcomp.name,
        ", layer %s" % tlayer.name if tlayer else "", comp.name,
        ", ".join(comp.uses) or "nothing else")


def resolve(tree, path, comp, name, quoted):
    """-> ("file", rel) | ("external", name) | ("system", None)
          | ("error", message)"""
    name = name.strip()
    if quoted:
        own = os.path.normpath(os.path.join(os.path.dirname(path), name))
        own = own.replace(os.sep, "/")
        if own in tree.files:
            return "file", own
    found = []
    for d in tree.search_dirs(comp):
        cand = os.path.normpath(d + name).replace(os.sep, "/")
        if cand in tree.files and cand not in found:
            found.append(cand)
    if len(found) > 1 and all(tree.rules.is_per_system(f) for f in found):
        return "file", found[0]      # one per system: the first stands for all
    if len(found) > 1:
        return "error", "ambiguous: %s" % ", ".join(found)
    if found:
        return "file", found[0]
    # Not on the component's path: a project header elsewhere?
    clean = os.path.normpath(name).replace(os.sep, "/")
    anywhere = sorted(p for p in tree.by_name.get(os.path.basename(clean), [])
                      if p == clean or p.endswith("/" + clean))
    if len(anywhere) > 1:
        return "error", "ambiguous, and not in %s's folders: %s" % (
            comp.name, ", ".join(anywhere))
    if anywhere:
        return "file", anywhere[0]
    if os.path.basename(clean) in tree.rules.externals:
        return "external", os.path.basename(clean)
    if quoted:
        return "error", "no such project header, and not an external one"
    return "system", None


def check_includes(tree, res, inc_graph):
    rules = tree.rules
    for path in tree.checked:
        comp, layer = where_is(rules, path)
        unit = unit_of(path)
        inc_graph.setdefault(unit, set())
        for m in INCLUDE.finditer(tree.text(path)):
            line = tree.text(path).count("\n", 0, m.start()) + 1
            quoted = m.group(1) == '"'
            name = m.group(2)
            shown = ('"%s"' if quoted else "<%s>") % name
            kind, what = resolve(tree, path, comp, name, quoted)
            here = "%s:%d: includes %s" % (path, line, shown)
            if kind == "system":
                continue
            if kind == "error":
                res.fail("%s: %s" % (here, what))
                continue
            if kind == "external":
                users = rules.externals[what]
                if comp.name not in users:
                    res.fail("%s (generated, external): %s may not include "
                             "it (only %s)" % (here, describe(comp, layer),
                                               ", ".join(sorted(users))))
                continue
            if rules.is_unchecked(what):
                res.fail("%s = %s: a file of an unchecked folder, in no "
                         "layer" % (here, what))
                continue
            tcomp, tlayer = where_is(rules, what)
            if tcomp is None:
                res.fail("%s = %s: a file in no component" % (here, what))
                continue
            res.include_edges.add((path, what))
            why = judge(rules, comp, layer, tcomp, tlayer, "include")
            if why:
                res.fail("%s = %s: %s" % (here, what, why))
            if unit_of(what) != unit:
                inc_graph[unit].add(unit_of(what))


# ---------------------------------------------------------------- objects

DEFINED = set("BCDGRSTVWiu")
UNDEFINED = set("Uwv")


def nm_symbols(nm, obj):
    """-> (defined globals, undefined) or raises RuntimeError."""
    p = subprocess.run([nm, "-P", obj], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or "nm failed")
    defined, undefined = set(), set()
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, t = parts[0], parts[1]
        if t in DEFINED:
            defined.add(sym)
        elif t in UNDEFINED:
            undefined.add(sym)
    return defined, undefined


def object_of(entry):
    if entry.get("output"):
        return entry["output"]
    args = entry.get("arguments") or shlex.split(entry.get("command", ""))
    for i, a in enumerate(args):
        if a == "-o" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("-o") and len(a) > 2:
            return a[2:]
    return None


def check_calls(tree, res, build, call_graph):
    rules = tree.rules
    db = os.path.join(build, "compile_commands.json")
    try:
        with open(db, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfError("%s: %s" % (db, getattr(e, "strerror", None) or e))
    nm = shutil.which(os.environ.get("NM", "nm"))
    if nm is None:
        raise ConfError("nm not found (needed for --build)")
    source = os.path.realpath(tree.source)
    checked = set(tree.checked)
    external_stems = {os.path.splitext(h)[0]: h for h in rules.externals}
    # unit (or "<external.h>") -> objects
    objects = collections.defaultdict(set)
    for e in entries:
        d = e.get("directory", build)
        src = os.path.realpath(os.path.join(d, e.get("file", "")))
        obj = object_of(e)
        if obj is None:
            continue
        obj = os.path.join(d, obj)
        rel = os.path.relpath(src, source).replace(os.sep, "/")
        if rel in checked and rel.endswith(".c"):
            objects[unit_of(rel)].add(obj)
            continue
        if not rel.startswith("../") and (
                rules.is_unchecked(rel) or rules.component_of(rel)):
            continue                  # tests/, fuzz/, or not a .c we check
        stem = os.path.splitext(os.path.basename(src))[0]
        if stem in external_stems:
            objects["<%s>" % external_stems[stem]].add(obj)
    defs = collections.defaultdict(set)     # symbol -> units
    uses = collections.defaultdict(set)     # unit -> undefined symbols
    for unit in sorted(objects):
        for obj in sorted(objects[unit]):
            try:
                d, u = nm_symbols(nm, obj)
            except (RuntimeError, OSError) as e:
                res.fail("%s: cannot read its symbols (%s); build it first "
                         "(meson compile)" % (os.path.relpath(obj), e))
                continue
            for s in d:
                defs[s].add(unit)
            if not unit.startswith("<"):
                uses[unit].update(u)
    # what interface headers declare, for implemented-by components
    declared = {}
    for comp in rules.components.values():
        if comp.implemented_by:
            for h in tree.checked:
                if h.endswith(".h") and rules.component_of(h) is comp:
                    declared[h] = tree.declared(h)

    unit_file = lambda unit: unit + (".c" if unit + ".c" in checked
                                     else ".h")

    def interface_for(comp, tcomp, sym):
        """A header the caller may include that declares sym, defined by
        tcomp, a component implementing that header's component."""
        for iname in comp.uses:
            iface = rules.components[iname]
            if tcomp.name in iface.implemented_by:
                for h, names_declared in sorted(declared.items()):
                    if rules.component_of(h) is iface and sym in names_declared:
                        return h
        return None

    edges = collections.defaultdict(set)    # (caller, callee) -> symbols
    for unit in sorted(uses):
        comp, layer = where_is(rules, unit_file(unit))
        call_graph.setdefault(unit, set())
        for sym in sorted(uses[unit]):
            cands = defs.get(sym, set())
            if not cands or unit in cands:
                continue
            same = {c for c in cands if not c.startswith("<") and
                    rules.component_of(unit_file(c)) is comp}
            allowed = {c for c in cands if not c.startswith("<") and
                       rules.may_use(comp, rules.component_of(unit_file(c)))}
            for callee in sorted(same or allowed or cands):
                if not callee.startswith("<"):
                    tcomp = rules.component_of(unit_file(callee))
                    if not rules.may_use(comp, tcomp):
                        via = interface_for(comp, tcomp, sym)
                        if via:     # through the public header: fine
                            callee = unit_of(via)
                edges[(unit, callee)].add(sym)
    for (unit, callee), syms in sorted(edges.items()):
        comp, layer = where_is(rules, unit_file(unit))
        res.call_edges.add((unit, callee))
        here = "%s.c: calls %s" % (unit, ", ".join(sorted(syms)))
        if callee.startswith("<"):
            header = callee[1:-1]
            users = rules.externals[header]
            if comp.name not in users:
                res.fail("%s, defined by code generated from %s: %s may not "
                         "use it (only %s)" % (here, header,
                                               describe(comp, layer),
                                               ", ".join(sorted(users))))
            continue
        call_graph[unit].add(callee)
        tcomp, tlayer = where_is(rules, unit_file(callee))
        why = judge(rules, comp, layer, tcomp, tlayer, "call")
        if why:
            res.fail("%s, defined in %s: %s" % (here, unit_file(callee),
                                                 why))


# ---------------------------------------------------------------- cycles

def strongly_connected(graph):
    """Tarjan, iterative. -> list of components with more than one node."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    nodes = sorted(set(graph) | {v for vs in graph.values() for v in vs})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return sorted(out)


def cycles_covering(graph, scc):
    """Shortest cycles through the SCC's edges until each edge is on one."""
    members = set(scc)
    edges = sorted((u, v) for u in scc for v in graph.get(u, ())
                   if v in members)
    covered, cycles = set(), []
    for u, v in edges:
        if (u, v) in covered:
            continue
        prev = {v: None}
        queue = collections.deque([v])
        while queue and u not in prev:
            x = queue.popleft()
            for y in sorted(graph.get(x, ())):
                if y in members and y not in prev:
                    prev[y] = x
                    queue.append(y)
        path = [u]
        x = u
        while x != v:
            x = prev[x]
            path.append(x)
        path = [u] + list(reversed(path[1:]))   # u, v, ..., (before u)
        cyc = path + [u]
        for a, b in zip(cyc, cyc[1:]):
            covered.add((a, b))
        k = path.index(min(path))
        path = path[k:] + path[:k]
        cycles.append(path + [path[0]])
    return cycles


def check_cycles(graph, res, what):
    for scc in strongly_connected(graph):
        res.note("%s circle of %d units: %s" % (what, len(scc), " ".join(scc)))
        for cyc in cycles_covering(graph, scc):
            res.fail("%s cycle: %s" % (what, ARROW.join(cyc)))


# ---------------------------------------------------------------- main

def check(source, conf, build=None):
    """-> Result. Raises ConfError when the check cannot run."""
    rules = parse_rules(conf)
    if not os.path.isdir(source):
        raise ConfError("%s: not a directory" % source)
    tree = Tree(source, rules)
    res = Result()
    res.files = len(tree.checked)
    for path in tree.checked:
        comp = rules.component_of(path)
        layers = comp.layer_of(path)
        if not layers:
            res.fail("%s: in no layer of %s (%s:%d)" % (
                path, comp.name, os.path.basename(conf), comp.line))
        elif len(layers) > 1:
            res.fail("%s: in several layers of %s: %s" % (
                path, comp.name, ", ".join(l.name for l in layers)))
    inc_graph = {}
    check_includes(tree, res, inc_graph)
    check_cycles(inc_graph, res, "include")
    if build is not None:
        call_graph = {}
        check_calls(tree, res, build, call_graph)
        check_cycles(call_graph, res, "call")
    return res


def summary(res, build):
    calls = "%d call edges" % len(res.call_edges)
    if build is None:
        calls += " (no --build)"
    head = "layers: %d files, %d include edges, %s, " % (
        res.files, len(res.include_edges), calls)
    if not res.violations:
        return head + "no violation"
    n = len(res.violations)
    return head + "%d violation%s" % (n, "" if n == 1 else "s")


def main(argv=None):
    try:
        sys.stdout.reconfigure(errors="replace")
    except AttributeError:
        pass
    ap = argparse.ArgumentParser(
        description="Check mmapio's include and call layering.")
    ap.add_argument("--source", default=os.path.dirname(HERE),
                    help="source root (default: the script's project)")
    ap.add_argument("--build", help="meson build directory: also check the "
                    "call graph of its objects")
    ap.add_argument("--conf", default=DEFAULT_CONF,
                    help="rules file (default: scripts/layers.conf)")
    ap.add_argument("--self-test", action="store_true",
                    help="check synthetic trees and assert the verdicts")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test(args.conf)
    try:
        res = check(args.source, args.conf, args.build)
    except ConfError as e:
        print("layers: error: %s" % e)
        return 2
    for line in res.lines:
        print(line)
    print(summary(res, args.build))
    return 1 if res.violations else 0


# ---------------------------------------------------------------- self-test

CLEAN = {
    "include/mmapio.h": """
        #ifndef MMAPIO_H
        #define MMAPIO_H
        #include <stddef.h>
        int mmapio_connect(const char *path);
        const char *mmapio_strerror(int err);
        #endif
        """,
    "common/ctlarea.h": '#include "mmapio.h"\nstruct ctl_slot { int n; };\n',
    "common/wire.h": '#include "mmapio.h"\n#include "mmapio.pb-c.h"\n'
                     'int wire_send(int fd);\n',
    "common/wire.c": '#include "wire.h"\nint wire_send(int fd)'
                     ' { return fd + proto_size(); }\n',
    "daemon/meson.build": "# not C: ignored\n",
    "daemon/base/log.h": "void log_msg(const char *m);\n",
    "daemon/base/log.c": '#include <stdio.h>\n#include "log.h"\n'
                         "void log_msg(const char *m) { puts(m); }\n",
    "daemon/base/hmap.h": "int hmap_size(void);\n",
    "daemon/base/hmap.c": '#include "hmap.h"\n#include "log.h"\n'
                          'int hmap_size(void) { log_msg("h"); return 0; }\n',
    "daemon/model/hook.h": "struct hook { void (*changed)(int id); };\n"
                           "void hook_set(const struct hook *h);\n",
    "daemon/model/mapping.h": '#include "hmap.h"\n#include "ctlarea.h"\n'
                              '#include "mmapio.h"\n#include "hook.h"\n'
                              "int mapping_new(void);\n",
    # A commented-out include is no include.
    "daemon/model/mapping.c": """
        #include "mapping.h"
        /* #include "flushes.h"   (services: the hook tells them) */
        // #include "conn.h"
        static const struct hook *the_hook;
        void hook_set(const struct hook *h) { the_hook = h; }
        int mapping_new(void)
        {
            if (the_hook)
                the_hook->changed(1);
            return hmap_size();
        }
        """,
    "daemon/services/flushes.h": '#include "mapping.h"\n'
                                 "void flushes_kick(int id);\n",
    "daemon/services/flushes.c": """
        #include "flushes.h"
        #include "log.h"
        static void changed(int id) { flushes_kick(id); }
        static const struct hook h = { changed };
        void flushes_kick(int id) { (void)id; log_msg("kick"); }
        void flushes_init(void);
        void flushes_init(void) { hook_set(&h); mapping_new(); }
        """,
    "daemon/services/watch.h": "void watch_notify(int id);\n",
    "daemon/services/watch.c": '#include "watch.h"\n#include "flushes.h"\n'
                               "void watch_notify(int id) { flushes_kick(id); }\n",
    "daemon/requests/ops.h": '#include "mmapio.pb-c.h"\nint ops_dispatch(int r);\n',
    "daemon/requests/ops.c": '#include "ops.h"\n#include "watch.h"\n'
                             '#include "wire.h"\n'
                             "int ops_dispatch(int r) { watch_notify(r); "
                             "return wire_send(r); }\n",
    "daemon/transport/conn.h": "int conn_read(int fd);\n",
    "daemon/transport/conn.c": '#include "conn.h"\n#include "ops.h"\n'
                               "int conn_read(int fd) { return ops_dispatch(fd); }\n",
    "daemon/main.c": '#include "conn.h"\n#include "base/log.h"\n'
                     '#include "../include/mmapio.h"\n'
                     'int main(void) { log_msg("up"); return conn_read(0); }\n',
    "client/internal.h": '#include "ctlarea.h"\n#include "mmapio.h"\n'
                         '#include "mmapio.pb-c.h"\nint client_call(int x);\n',
    "client/client.c": '#include "internal.h"\n#include "wire.h"\n'
                       "int client_call(int x) { return wire_send(x); }\n"
                       "int mmapio_connect(const char *p) "
                       "{ (void)p; return client_call(0); }\n",
    "client/errors.c": '#include "internal.h"\n'
                       'const char *mmapio_strerror(int e) '
                       '{ return e ? "bad" : "ok"; }\n',
    "cli/mmapioctl.c": '#include <stdio.h>\n#include "mmapio.h"\n'
                       "int main(void) { puts(mmapio_strerror("
                       "mmapio_connect(0))); return 0; }\n",
    # unchecked: may reach into anything
    "tests/test_mapping.c": '#include "mapping.h"\n#include "internal.h"\n'
                            '#include "flushes.h"\n',
    "fuzz/fuzz.c": '#include "ops.h"\n#include "conn.h"\n',
}

# The generated protocol lives in the build directory.
GENERATED = {
    "proto/mmapio.pb-c.h": "int proto_size(void);\n"
                           "extern const int mmapio__request__descriptor;\n",
    "proto/mmapio.pb-c.c": '#include "mmapio.pb-c.h"\n'
                           "const int mmapio__request__descriptor = 1;\n"
                           "int proto_size(void) { return 3; }\n",
}


def dedent(text):
    lines = text.strip("\n").splitlines()
    pad = min((len(l) - len(l.lstrip()) for l in lines if l.strip()),
              default=0)
    return "\n".join(l[pad:] for l in lines) + "\n"


def write_tree(root, files):
    for rel, text in files.items():
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(dedent(text) if text is not None else "")


def variant(changes):
    files = dict(CLEAN)
    for rel, text in changes.items():
        if text is None:
            files.pop(rel, None)
        else:
            files[rel] = text
    return files


def compile_tree(source, build, cc):
    """Compiles every checked .c and the generated code, as meson would:
    objects under build/, compile_commands.json with relative paths."""
    write_tree(build, GENERATED)
    incs = ["-I" + os.path.join(source, d) for d in
            ("include", "common", "client", "cli")]
    for top in ("daemon",):
        for d, subdirs, _ in os.walk(os.path.join(source, top)):
            incs.append("-I" + d)
    incs.append("-I" + os.path.join(build, "proto"))
    sources = []
    for top in ("common", "daemon", "client", "cli"):
        for d, _, names in os.walk(os.path.join(source, top)):
            sources += [os.path.join(d, n) for n in names if n.endswith(".c")]
    entries = []
    for src in sorted(sources) + [os.path.join(build, "proto/mmapio.pb-c.c")]:
        rel = os.path.relpath(src, build)
        obj = rel.replace("../", "").replace("/", "_") + ".o"
        cmd = [cc, "-std=c11", "-c"] + incs + ["-o", obj, rel]
        p = subprocess.run(cmd, cwd=build, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if p.returncode != 0:
            raise RuntimeError("cc failed on %s:\n%s" % (rel, p.stdout))
        entries.append({"directory": build, "file": rel, "output": obj,
                        "command": " ".join(shlex.quote(a) for a in cmd)})
    with open(os.path.join(build, "compile_commands.json"), "w") as f:
        json.dump(entries, f, indent=1)


def self_test(conf):
    failures = []
    ran = [0]

    def case(name, files, expect_exit, must=(), must_not=(), build_cc=None,
             count=None):
        ran[0] += 1
        tmp = tempfile.mkdtemp(prefix="layers-selftest-")
        try:
            source = os.path.join(tmp, "src")
            write_tree(source, files)
            build = None
            if build_cc:
                build = os.path.join(tmp, "src", "build")
                os.makedirs(build)
                compile_tree(source, build, build_cc)
            try:
                res = check(source, conf, build)
                lines = res.lines + [summary(res, build)]
                got = 1 if res.violations else 0
            except ConfError as e:
                lines, got = ["layers: error: %s" % e], 2
            out = "\n".join(lines)
            wrong = []
            if got != expect_exit:
                wrong.append("exit %d, expected %d" % (got, expect_exit))
            for pat in must:
                if not re.search(pat, out, re.M):
                    wrong.append("no line matching %r" % pat)
            for pat in must_not:
                if re.search(pat, out, re.M):
                    wrong.append("a line matching %r" % pat)
            if count is not None and got == 1 and \
                    len(res.violations) != count:
                wrong.append("%d violations, expected %d"
                             % (len(res.violations), count))
            if wrong:
                failures.append(name)
                print("FAIL %s: %s" % (name, "; ".join(wrong)))
                print("  | " + out.replace("\n", "\n  | "))
            else:
                print("ok   %s" % name)
        except Exception as e:  # a crash is a wrong verdict too
            failures.append(name)
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    try:
        rules = parse_rules(conf)
        print("ok   rules file parses: %s" % ", ".join(
            "%s (%s)" % (c.name, " < ".join(l.name for l in c.layers))
            for c in rules.components.values()))
    except ConfError as e:
        print("FAIL rules file: %s" % e)
        return 1

    A = ARROW.strip()
    case("clean tree passes", CLEAN, 0,
         must=[r"^layers: \d+ files, \d+ include edges, 0 call edges"
               r".*, no violation$"])
    case("upward include (model includes a services header)",
         variant({"daemon/model/mapping.c":
                  '#include "mapping.h"\n#include "log.h"\n'
                  '#include "flushes.h"\nint mapping_new(void) '
                  "{ return 0; }\n"}), 1,
         must=[r'^daemon/model/mapping\.c:3: includes "flushes\.h" = '
               r"daemon/services/flushes\.h: daemon layer model \(2\) may "
               r"not include layer services \(3\) above it$",
               # flushes.h includes mapping.h: a circle too
               r"^include cycle: daemon/model/mapping %s "
               r"daemon/services/flushes %s daemon/model/mapping$" % (A, A)],
         count=2)
    case("upward include from a header (base includes transport)",
         variant({"daemon/base/hmap.h": '#include "conn.h"\n'
                  "int hmap_size(void);\n"}), 1,
         must=[r"^daemon/base/hmap\.h:1: .*daemon/transport/conn\.h: "
               r"daemon layer base \(1\) .* transport \(5\)",
               r"^include cycle: daemon/base/hmap %s daemon/transport/conn "
               r"%s daemon/requests/ops %s .* daemon/base/hmap$" % (A, A, A)],
         count=2)
    case("same-layer include cycle (flushes <-> watch)",
         variant({"daemon/services/flushes.c":
                  '#include "flushes.h"\n#include "watch.h"\n'
                  "void flushes_kick(int id) { (void)id; }\n"}), 1,
         must=[r"^include cycle: daemon/services/flushes %s "
               r"daemon/services/watch %s daemon/services/flushes$"
               % (A, A)],
         must_not=[r"may not"], count=1)
    case("three-unit cycle in the client",
         variant({"client/a.h": '#include "b.h"\n',
                  "client/b.h": '#include "c.h"\n', "client/c.h": "",
                  "client/c.c": '#include "a.h"\n'}), 1,
         must=[r"^include cycle: client/a %s client/b %s client/c %s "
               r"client/a$" % (A, A, A)], count=1)
    case("cli includes the client's private header",
         variant({"cli/mmapioctl.c": '#include <stdio.h>\n#include "mmapio.h"'
                  '\n#include "internal.h"\nint main(void) { return 0; }\n'}),
         1, must=[r'^cli/mmapioctl\.c:3: includes "internal\.h" = '
                  r"client/internal\.h: cli layer cli \(0\) may not include "
                  r"component client"], count=1)
    case("cli includes a common header with <...>",
         variant({"cli/mmapioctl.c": '#include <policy.h>\n',
                  "common/policy.h": '#include "mmapio.h"\n'}), 1,
         must=[r"^cli/mmapioctl\.c:1: includes <policy\.h> = "
               r"common/policy\.h: .*may not include component common"],
         count=1)
    case("cli includes the generated protobuf header",
         variant({"cli/mmapioctl.c": '#include "mmapio.pb-c.h"\n'}), 1,
         must=[r'^cli/mmapioctl\.c:1: includes "mmapio\.pb-c\.h" '
               r"\(generated, external\): .*only client, common, daemon"],
         count=1)
    case("common includes a daemon header",
         variant({"common/wire.c": '#include "wire.h"\n#include "log.h"\n'}),
         1, must=[r'^common/wire\.c:2: includes "log\.h" = '
                  r"daemon/base/log\.h: .*may not include component daemon"],
         count=1)
    case("client includes a daemon header by path",
         variant({"client/errors.c": '#include "../daemon/model/mapping.h"\n'}
                 ), 1, must=[r"^client/errors\.c:1: .*may not include "
                             r"component daemon, layer model"], count=1)
    case("a daemon file in no layer (flat daemon/)",
         variant({"daemon/foo.c": '#include "log.h"\n'}), 1,
         must=[r"^daemon/foo\.c: in no layer of daemon"], count=1)
    case("ambiguous bare include across daemon folders",
         variant({"daemon/base/util.h": "", "daemon/model/util.h": "",
                  "daemon/services/watch.c": '#include "util.h"\n'}), 1,
         must=[r'^daemon/services/watch\.c:1: includes "util\.h": ambiguous'
               r": daemon/base/util\.h, daemon/model/util\.h$"], count=1)
    case("one header per system (per-system folders) is not ambiguous",
         variant({"daemon/platform/linux/ptypes.h": "",
                  "daemon/platform/windows/ptypes.h": "",
                  "daemon/platform/wakeup.h": '#include "ptypes.h"\n'}), 0)
    case("a per-system header and a base one of that name are ambiguous",
         variant({"daemon/platform/linux/ptypes.h": "",
                  "daemon/base/ptypes.h": "",
                  "daemon/platform/wakeup.h": '#include "ptypes.h"\n'}), 1,
         must=[r'^daemon/platform/wakeup\.h:1: includes "ptypes\.h": '
               r"ambiguous"])
    case("own folder wins over another folder's header of that name",
         variant({"daemon/base/util.h": "", "daemon/model/util.h": "",
                  "daemon/model/mapping.c": '#include "util.h"\n'}), 0)
    case("unresolvable quoted include",
         variant({"daemon/base/log.c": '#include "nothere.h"\n'}), 1,
         must=[r'^daemon/base/log\.c:1: includes "nothere\.h": no such '
               r"project header"], count=1)
    case("daemon includes a test header",
         variant({"daemon/base/log.c": '#include "harness.h"\n',
                  "tests/harness.h": ""}), 1,
         must=[r"tests/harness\.h: a file of an unchecked folder"], count=1)

    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc") \
        or shutil.which("gcc") or shutil.which("clang")
    if cc is None or shutil.which("nm") is None:
        print("skip object-level cases: no C compiler or nm")
    else:
        case("objects: clean tree passes with --build", CLEAN, 0, build_cc=cc,
             must=[r"^layers: \d+ files, \d+ include edges, [1-9]\d* call "
                   r"edges, no violation$"])
        case("objects: upward call through a local prototype",
             variant({"daemon/model/mapping.c": """
                 #include "mapping.h"
                 void flushes_kick(int id);   /* no include: a prototype */
                 void hook_set(const struct hook *h) { (void)h; }
                 int mapping_new(void) { flushes_kick(1); return hmap_size(); }
                 """}), 1, build_cc=cc,
             must=[r"^daemon/model/mapping\.c: calls flushes_kick, defined "
                   r"in daemon/services/flushes\.c: daemon layer model \(2\) "
                   r"may not call layer services \(3\) above it$",
                   r"^call cycle: daemon/model/mapping %s "
                   r"daemon/services/flushes %s daemon/model/mapping$"
                   % (A, A)],
             must_not=[r"includes"], count=2)
        case("objects: same-layer call cycle through prototypes",
             variant({"daemon/services/watch.c": """
                 #include "watch.h"
                 void flushes_kick(int id);
                 void watch_notify(int id) { flushes_kick(id); }
                 """, "daemon/services/flushes.c": """
                 #include "flushes.h"
                 void watch_notify(int id);
                 void flushes_kick(int id) { if (id) watch_notify(id - 1); }
                 """}), 1, build_cc=cc,
             must=[r"^call cycle: daemon/services/flushes %s "
                   r"daemon/services/watch %s daemon/services/flushes$"
                   % (A, A)], must_not=[r"may not", r"include cycle"],
             count=1)
        case("objects: cli calls a private client function and generated "
             "code", variant({"cli/mmapioctl.c": """
                 #include "mmapio.h"
                 int client_call(int x);
                 extern const int mmapio__request__descriptor;
                 int main(void) { mmapio_connect(0);
                     return client_call(mmapio__request__descriptor); }
                 """}), 1, build_cc=cc,
             must=[r"^cli/mmapioctl\.c: calls client_call, defined in "
                   r"client/client\.c: cli layer cli \(0\) may not call "
                   r"component client",
                   r"^cli/mmapioctl\.c: calls mmapio__request__descriptor, "
                   r"defined by code generated from mmapio\.pb-c\.h"],
             count=2)

    print("layers self-test: %d cases, %d wrong" % (ran[0], len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
