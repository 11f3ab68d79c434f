//! No two modules of the crate need each other. Reads the sources: every `crate::`,
//! `super::` and `self::` path of a file (in `use` lines and in code) is an edge to the
//! module it names. A module and its own submodules are one unit (a parent declares its
//! children, children use the parent's items), so edges between them do not count;
//! siblings and cousins do. Test code is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn modules(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            let mut inner = prefix.clone();
            inner.push(name);
            modules(&path, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = prefix.clone();
            if !matches!(stem, "mod" | "lib" | "main") {
                module.push(stem.to_string());
            }
            out.insert(module, path);
        }
    }
}

/// The source without comments, string and quote literals, and the inline test module.
fn code(text: &str) -> String {
    let text: Vec<char> = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default()
        .chars()
        .collect();
    let at = |i: usize| text.get(i).copied().unwrap_or(' ');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match (at(i), at(i + 1), at(i + 2)) {
            ('/', '/', _) => {
                while i < text.len() && at(i) != '\n' {
                    i += 1;
                }
            }
            // A quote character: '"' (and '\'' is no string either).
            ('\'', '"', '\'') => i += 3,
            ('\'', '\\', _) => i += 4,
            ('r', '#', '"') => {
                i += 3;
                while i < text.len() && !(at(i) == '"' && at(i + 1) == '#') {
                    i += 1;
                }
                i += 2;
                out.push_str("\"\"");
            }
            ('"', _, _) => {
                i += 1;
                while i < text.len() && at(i) != '"' {
                    i += if at(i) == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Paths of `use` lines, their groups expanded: `crate::a::{b, c::d}` is `crate::a::b`
/// and `crate::a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or_default().to_string()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len().saturating_sub(1)]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for statement in code.split(';') {
        if let Some(at) = statement.find("use ") {
            let before = &statement[..at];
            if before.is_empty() || before.ends_with(|c: char| c.is_whitespace() || c == '}') {
                found.extend(expand(&statement[at + 4..]));
            }
        }
    }
    // Paths written in code: `crate::a::b(...)`, `super::x::Y`.
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    for (at, _) in code.match_indices("::") {
        let start = code[..at].rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
        let end = code[at..]
            .find(|c: char| !word(c))
            .map_or(code.len(), |i| at + i);
        let path = &code[start..end];
        if ["crate::", "super::", "self::"]
            .iter()
            .any(|root| path.starts_with(root))
        {
            found.push(path.to_string());
        }
    }
    found
}

/// The module a path names: the longest module prefix of it.
fn resolve(from: &Module, path: &str, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut base: Module = match segments.peek() {
        Some(&"crate") => {
            segments.next();
            Vec::new()
        }
        Some(&"super") | Some(&"self") => from.clone(),
        _ => return None,
    };
    while let Some(&s) = segments.peek() {
        match s {
            "super" => base.truncate(base.len().saturating_sub(1)),
            "self" => {}
            _ => break,
        }
        segments.next();
    }
    base.extend(segments.map(str::to_string));
    (0..=base.len())
        .rev()
        .map(|n| base[..n].to_vec())
        .find(|m| known.contains_key(m))
}

fn is_test(module: &Module) -> bool {
    module
        .last()
        .is_some_and(|m| m.contains("tests") || m == "testkit")
        || module.first().is_some_and(|m| m == "bin")
}

fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_two_modules_need_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = BTreeMap::new();
    modules(&src, &Vec::new(), &mut known);
    assert!(known.len() > 50, "read the sources: {}", src.display());
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in known.iter().filter(|(m, _)| !is_test(m)) {
        let text = std::fs::read_to_string(file).unwrap();
        let targets = paths(&code(&text))
            .iter()
            .filter_map(|p| resolve(module, p, &known))
            .filter(|t| !related(module, t) && !is_test(t))
            .collect();
        edges.insert(module.clone(), targets);
    }
    let found: Vec<String> = cycles(&edges)
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect();
    assert!(found.is_empty(), "modules that need each other: {found:?}");
}

#[test]
fn the_check_sees_a_cycle() {
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Module>();
    let edges = BTreeMap::from([
        (m("domain::a"), BTreeSet::from([m("domain::b")])),
        (m("domain::b"), BTreeSet::from([m("domain::a")])),
        (m("domain::c"), BTreeSet::from([m("domain::a")])),
    ]);
    assert_eq!(cycles(&edges).len(), 1);
    let known = BTreeMap::from([
        (m("domain"), PathBuf::new()),
        (m("domain::plan"), PathBuf::new()),
        (m("domain::files"), PathBuf::new()),
    ]);
    let used = paths(&code(
        "use super::files::{OutputFile, FileSummary};\nfn f() { crate::domain::plan::x(); }\n",
    ));
    let resolved: Vec<_> = used
        .iter()
        .filter_map(|p| resolve(&m("domain::expand"), p, &known))
        .collect();
    assert!(resolved.contains(&m("domain::files")), "{used:?}");
    assert!(resolved.contains(&m("domain::plan")), "{used:?}");
}
