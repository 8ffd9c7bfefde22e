#!/usr/bin/env python3
"""The layout of a Rust crate's sources: its file -> file import graph,
the circles in it, its floors, and the files over the size limit.

Usage: ci/layout.py SRC_DIR [--edges] [--floors] [--check]

--check exits 1 when the graph has a circle or a source file (test files
apart) is over MAX_LINES lines; ci/lint.sh runs it on src/ and
launcher/src/. --floors prints each file's floor (0 imports nothing of
the crate; each file sits one floor above the highest file it imports),
which docs/layout.md shows.

An edge A -> B means file A names an item defined in file B. Names are
followed through `pub use` re-exports to the file that defines them; `mod`
declarations and re-export lines themselves are structure, not edges. Test
modules (files named test.rs/tests.rs, and `#[cfg(test)] mod` blocks) are left
out.
"""
import os, re, sys
from collections import defaultdict

MAX_LINES = 900

root = sys.argv[1]
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            parts = os.path.relpath(p, root)[:-3].split(os.sep)
            if parts[-1] == 'mod': parts = parts[:-1]
            if parts in (['lib'], ['main']): parts = []
            files[tuple(parts)] = p

def is_test(parts):
    return bool(parts) and parts[-1] in ('test', 'tests')

def strip(src):
    src = re.sub(r'//[^\n]*', '', src)
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    src = re.sub(r"b?'(\\.|[^'\\])'", "' '", src)
    src = re.sub(r'r#*"(?:.|\n)*?"#*', '""', src) if False else src
    src = re.sub(r'"(\\.|[^"\\])*"', '""', src, flags=re.S)
    # cut #[cfg(test)] mod NAME { ... }
    out = ''; i = 0
    for m in re.finditer(r'#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{', src):
        if m.start() < i: continue
        out += src[i:m.start()]
        j = m.end(); depth = 1
        while depth and j < len(src):
            depth += {'{': 1, '}': -1}.get(src[j], 0); j += 1
        i = j
    return out + src[i:]

def split_tree(body):
    items, depth, cur = [], 0, ''
    for ch in body:
        if ch == '{': depth += 1
        if ch == '}': depth -= 1
        if ch == ',' and depth == 0: items.append(cur); cur = ''
        else: cur += ch
    items.append(cur)
    return [i.strip() for i in items if i.strip()]

def expand(prefix, body):
    res = []
    for it in split_tree(body):
        m = re.match(r'^((?:\w+\s*::\s*)*)\{(.*)\}$', it, re.S)
        if m:
            res += expand(prefix + [s.strip() for s in m.group(1).split('::') if s.strip()], m.group(2))
        else:
            alias = None
            am = re.match(r'^(.*?)\s+as\s+(\w+)$', it, re.S)
            if am: it, alias = am.group(1), am.group(2)
            segs = [s.strip() for s in it.split('::')]
            res.append((prefix + segs, alias))
    return res

srcs = {k: strip(open(p).read()) for k, p in files.items() if not is_test(k)}
DEF = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+|async\s+|const\s+(?=fn))?(?:struct|enum|fn|trait|type|const|static|union|macro_rules!)\s+(\w+)', re.M)
defs = {k: set(DEF.findall(s)) for k, s in srcs.items()}
# macros with #[macro_export] live at crate root; ignore
reexp = defaultdict(dict)   # file -> name -> (path segs, cur)
uses = defaultdict(list)    # file -> [(segs)]
for k, s in srcs.items():
    for m in re.finditer(r'(^|\n)\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]*);', s):
        pub = bool(m.group(2)); body = m.group(3).strip()
        for segs, alias in expand([], body):
            if segs[-1] in ('*', 'self'):
                if pub: reexp[k].setdefault('*', []).append(segs[:-1] if segs[-1] == '*' else segs[:-1])
                if segs[-1] == 'self': segs = segs[:-1]
            if pub and segs[-1] != '*':
                reexp[k][alias or segs[-1]] = segs
            elif not pub:
                uses[k].append(segs)
    s_nouse = re.sub(r'(^|\n)\s*(pub(?:\([^)]*\))?\s+)?use\s+[^;]*;', '\n', s)
    for m in re.finditer(r'(?<![:\w])((?:crate|super|self|[a-z_]\w*)(?:::\w+)+)', s_nouse):
        uses[k].append(m.group(1).split('::'))

def base_of(cur, segs):
    if segs[0] == 'crate': return [], segs[1:]
    if segs[0] == 'self': return list(cur), segs[1:]
    if segs[0] == 'super':
        b = list(cur); r = segs
        while r and r[0] == 'super': b = b[:-1]; r = r[1:]
        return b, r
    if tuple(cur) + (segs[0],) in files: return list(cur), segs
    return None

def find(cur, segs, depth=0):
    """The file defining the item segs names, seen from module cur."""
    if depth > 20: return None
    b = base_of(cur, segs)
    if b is None: return None
    base, rest = b
    mod = base + rest
    for k in range(len(mod), -1, -1):
        if tuple(mod[:k]) in files:
            f = tuple(mod[:k]); tail = mod[k:]
            break
    else: return None
    if not tail: return f
    name = tail[0]
    if name in defs.get(f, ()): return f
    if name in reexp.get(f, {}):
        return find(f, reexp[f][name] + tail[1:], depth + 1) or f
    for g in reexp.get(f, {}).get('*', []):
        r = find(f, g + tail, depth + 1)
        if r and r != f: return r
    return f

edges = defaultdict(dict)
for k in srcs:
    for segs in uses[k]:
        t = find(k, segs)
        if t is None or t == k or is_test(t): continue
        if t == () : continue
        nm = segs[-1]
        edges[k].setdefault(t, set()).add(nm)

g = {k: set(v) for k, v in edges.items()}
sys.setrecursionlimit(10000)
index, low, st, on, sccs, n = {}, {}, [], set(), [], [0]
def sc(v):
    index[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in g.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in srcs:
    if v not in index: sc(v)
name = lambda t: '/'.join(t) or 'lib'
if '--edges' in sys.argv:
    for a in sorted(edges):
        for t in sorted(edges[a]):
            print(name(a), '->', name(t), ':', ', '.join(sorted(edges[a][t])))
bad = [c for c in sccs if len(c) > 1]
for c in bad:
    cs = set(c)
    print('CIRCLE:', ', '.join(sorted(name(x) for x in c)))
    for a in sorted(c):
        for t in sorted(edges[a]):
            if t in cs: print('   ', name(a), '->', name(t), ':', ', '.join(sorted(edges[a][t])))
print(len(bad), 'circles')

if '--floors' in sys.argv and not bad:
    level = {}
    def lv(v):
        if v in level: return level[v]
        level[v] = 0
        level[v] = 1 + max((lv(w) for w in g.get(v, ())), default=-1)
        return level[v]
    for v in srcs: lv(v)
    lines = {}
    for v, l in level.items():
        n = sum(1 for _ in open(files[v]))
        lines.setdefault(l, []).append(f'{name(v)} ({n})')
    for l in sorted(lines):
        print(f'floor {l}: ' + ', '.join(sorted(lines[l])))

if '--check' in sys.argv:
    big = []
    for k, p in sorted(files.items()):
        if is_test(k):
            continue
        n = sum(1 for _ in open(p))
        if n > MAX_LINES:
            big.append(f'{p}: {n} lines (limit {MAX_LINES})')
    for b in big:
        print('TOO BIG:', b)
    if bad or big:
        print(f'ci/layout.py: {root}: {len(bad)} circle(s), {len(big)} file(s) over {MAX_LINES} lines', file=sys.stderr)
        sys.exit(1)
