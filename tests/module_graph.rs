//! The crate's module graph, read from the source: no cycle between
//! sibling modules nor between top-level modules, no plugin imports another
//! plugin, and the plugin side (`plugins`, `netlink`) never imports the
//! runtime. A child using its parent's items is not a dependency (Rust
//! code does that), a parent using its child is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every module of the library, by path (`networking::netd`), with its
/// source (test modules cut off).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    walk(&p, out);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p
                .strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
                .unwrap();
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            if rel == Path::new("main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let code: String = text
                .lines()
                .map(|l| match l.trim_start().starts_with("//") {
                    true => "",
                    false => l,
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    let mut out = BTreeMap::new();
    walk(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut out,
    );
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a source names after `prefix::`, braces expanded one level
/// (`crate::{a, b::c}` gives `a` and `b::c`).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let pat = format!("{prefix}::");
    let mut from = 0;
    while let Some(i) = code[from..].find(&pat) {
        let at = from + i;
        from = at + pat.len();
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| is_ident(c) || c == ':')
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            for item in group[..end].split(',') {
                let p: String = item
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c) || c == ':')
                    .collect();
                if !p.is_empty() {
                    out.push(p.trim_end_matches(':').to_string());
                }
            }
        } else {
            let p: String = rest
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            out.push(p.trim_end_matches(':').to_string());
        }
    }
    out
}

/// The longest module that `path` names (or is an item of).
fn resolve(path: &str, mods: &BTreeMap<String, String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| mods.contains_key(m))
}

fn graph() -> Graph {
    let mods = modules();
    let mut g = Graph::new();
    for (m, code) in &mods {
        let me: Vec<&str> = if m.is_empty() {
            vec![]
        } else {
            m.split("::").collect()
        };
        let parent = me[..me.len().saturating_sub(1)].join("::");
        let join = |base: &str, p: &str| match base {
            "" => p.to_string(),
            b => format!("{b}::{p}"),
        };
        let mut targets: Vec<String> = Vec::new();
        targets.extend(paths_after(code, "crate"));
        targets.extend(paths_after(code, "super").iter().map(|p| join(&parent, p)));
        targets.extend(paths_after(code, "self").iter().map(|p| join(m, p)));
        // A child module named by its bare name (`release::release`).
        for child in mods.keys().filter(|c| {
            c.strip_prefix(&join(m, ""))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains("::"))
        }) {
            let name = child.rsplit("::").next().unwrap();
            if !paths_after(code, name).is_empty() {
                targets.push(child.clone());
            }
        }
        let deps = g.entry(m.clone()).or_default();
        for t in targets.iter().filter_map(|t| resolve(t, &mods)) {
            let ancestor = m == &t || m.starts_with(&format!("{t}::")) || t.is_empty();
            if !ancestor {
                deps.insert(t);
            }
        }
    }
    g
}

/// The strongly connected components with more than one module.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    fn reach(g: &Graph, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for d in g.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in g.keys() {
        let fwd = reach(g, m);
        if !fwd.contains(m) || out.iter().any(|c| c.contains(m)) {
            continue;
        }
        let comp: Vec<String> = fwd
            .iter()
            .filter(|o| reach(g, o).contains(m))
            .cloned()
            .collect();
        out.push(comp);
    }
    out
}

#[test]
fn no_cycle_between_modules() {
    let g = graph();
    assert!(g.len() > 50, "the source was not read: {} modules", g.len());
    // The checker sees real dependencies (so a cycle would be seen too).
    assert!(g["cli::run"].contains("networking"), "{:?}", g["cli::run"]);
    assert!(g["networking"].contains("networking::release"));
    let c = cycles(&g);
    assert!(c.is_empty(), "import cycles: {c:?}");
    let mut top = Graph::new();
    for (m, deps) in &g {
        let tm = m.split("::").next().unwrap().to_string();
        for d in deps {
            let td = d.split("::").next().unwrap().to_string();
            if td != tm {
                top.entry(tm.clone()).or_default().insert(td);
            }
        }
    }
    let c = cycles(&top);
    assert!(c.is_empty(), "cycles between top-level modules: {c:?}");
}

#[test]
fn plugins_import_no_plugin_and_no_runtime() {
    let g = graph();
    let plugins = [
        "plugins::ptp",
        "plugins::bridge",
        "plugins::macvlan",
        "plugins::loopback",
        "plugins::ipam::host_local",
        "plugins::ipam::dhcp",
    ];
    let plugin_of = |m: &str| {
        plugins
            .iter()
            .find(|p| m == **p || m.starts_with(&format!("{p}::")))
            .copied()
    };
    let runtime = [
        "cli",
        "networking",
        "pod",
        "image",
        "stage1",
        "metadata",
        "error",
    ];
    let mut bad = Vec::new();
    for (m, deps) in &g {
        for d in deps {
            if let (Some(a), Some(b)) = (plugin_of(m), plugin_of(d)) {
                if a != b {
                    bad.push(format!("{m} -> {d}"));
                }
            }
            let plugin_side = m.starts_with("plugins") || m.starts_with("netlink");
            if plugin_side && runtime.contains(&d.split("::").next().unwrap()) {
                bad.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(bad.is_empty(), "forbidden imports: {bad:#?}");
}
