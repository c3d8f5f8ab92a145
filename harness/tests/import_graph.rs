//! The module import graph has no circle inside `harness/src` (nor among the stages of
//! `harness/src/test`), `workloads/src` and `node/src/runtime`: each top-level module of those
//! trees may use the others only one way, so a reader can follow a test from the command line down without coming back up. A
//! module's references are its `crate::<module>` (for `node/src/runtime`, `super::<module>`)
//! paths outside comments and outside its `#[cfg(test)] mod tests`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(p: &Path) -> Vec<PathBuf> {
    if p.is_file() {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        out.extend(rust_files(&e.unwrap().path()));
    }
    out.retain(|f| f.extension().is_some_and(|x| x == "rs"));
    out
}

/// The module names `prefix<name>` that `text` refers to, outside comments and tests.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Module → the modules it refers to, for the top-level modules of `root`.
fn graph(root: &Path, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if ["lib", "main", "mod"].contains(&name.as_str()) {
            continue;
        }
        let refs: &mut BTreeSet<String> = g.entry(name.clone()).or_default();
        for f in rust_files(&p) {
            refs.extend(references(&std::fs::read_to_string(&f).unwrap(), prefix));
        }
        refs.remove(&name);
    }
    let names: BTreeSet<String> = g.keys().cloned().collect();
    for refs in g.values_mut() {
        refs.retain(|r| names.contains(r));
    }
    g
}

/// A circle in `g`, if there is one (depth-first search with colours).
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_import_circle_in_harness_workloads_or_the_node_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (dir, prefix) in [
        ("harness/src", "crate::"),
        ("workloads/src", "crate::"),
        ("node/src/runtime", "super::"),
        // The stages of `harness test` (plan, runner, drive, faults, check, terminal).
        ("harness/src/test", "super::"),
    ] {
        let g = graph(&root.join(dir), prefix);
        assert!(g.len() >= 5, "{dir}: only {} modules found", g.len());
        if let Some(c) = circle(&g) {
            panic!("{dir}: import circle {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(circle(&g).is_some());
    g.get_mut("c").unwrap().clear();
    assert!(circle(&g).is_none());
    let refs = references(
        "use crate::x::Y; // crate::z\n/// [`crate::w`]\n",
        "crate::",
    );
    assert_eq!(refs, BTreeSet::from(["x".to_string()]));
}
