//! The top-level modules depend on each other one way: no module reaches,
//! through any chain of `crate::` paths (imports, code, tests or doc links),
//! back to itself, and each names only modules of the layers below its own
//! in the crate doc's numbered list (src/lib.rs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One module's references: the module it names, and where.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn top_level_modules_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_graph(&src);
    assert!(
        edges.len() > 10,
        "too few modules found in {}",
        src.display()
    );
    if let Some(circle) = find_circle(&edges) {
        let steps: Vec<String> = circle
            .windows(2)
            .map(|w| format!("  {} -> {}  ({})", w[0], w[1], edges[&w[0]][&w[1]]))
            .collect();
        panic!("a circle between top-level modules:\n{}", steps.join("\n"));
    }
}

#[test]
fn every_arrow_runs_down_the_layers_the_crate_doc_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_graph(&src);
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let layer = layers(&lib, &edges);
    let unplaced: Vec<&String> = edges.keys().filter(|m| !layer.contains_key(*m)).collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer of src/lib.rs's list: {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (from, to) in edges
        .iter()
        .flat_map(|(a, bs)| bs.keys().map(move |b| (a, b)))
    {
        if layer[from] <= layer[to] {
            upward.push(format!(
                "  {from} (layer {}) -> {to} (layer {})  ({})",
                layer[from], layer[to], edges[from][to]
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "arrows that do not run down:\n{}",
        upward.join("\n")
    );
}

/// Inside each module with files of its own (`src/store/`, …), the files
/// and folders next to each other name each other one way too.
#[test]
fn the_parts_of_each_module_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut parents = Vec::new();
    for entry in fs::read_dir(&src).expect("src/").flatten() {
        if entry.path().join("mod.rs").is_file() {
            parents.push(entry.path());
        }
    }
    assert!(parents.len() > 3, "too few modules with parts found");
    for parent in parents {
        let edges = parts_graph(&parent);
        if let Some(circle) = find_circle(&edges) {
            panic!(
                "a circle between the parts of {}: {}",
                parent.display(),
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn a_circle_is_found_and_a_chain_is_not() {
    let graph = |pairs: &[(&str, &str)]| -> Edges {
        let mut e = Edges::new();
        for (a, b) in pairs {
            e.entry(a.to_string()).or_default();
            e.entry(b.to_string()).or_default();
            e.get_mut(*a).unwrap().insert(b.to_string(), String::new());
        }
        e
    };
    assert_eq!(
        find_circle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let names: Vec<String> = referenced(
        "use crate::{\n    app::App,\n    store::{self, Store},\n};\n/// [`crate::sync`]",
    )
    .into_iter()
    .map(|(_, name)| name)
    .collect();
    assert_eq!(names, ["app", "store", "sync"]);
}

/// The layer of each module the crate doc's numbered list names (`1. …`,
/// items continued on indented lines): the module names in backticks.
fn layers(lib: &str, edges: &Edges) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut current = None;
    for line in lib.lines().map_while(|l| l.strip_prefix("//!")) {
        let item = line.trim_start();
        let number = item
            .split_once(". ")
            .and_then(|(n, _)| n.parse::<usize>().ok());
        match number {
            Some(n) => current = Some(n),
            None if line.starts_with("    ") => {}
            None => current = None,
        }
        let Some(n) = current else { continue };
        for name in item.split('`').skip(1).step_by(2) {
            if edges.contains_key(name) {
                out.insert(name.to_owned(), n);
            }
        }
    }
    out
}

/// Each top-level module declared in lib.rs, with the modules its files
/// name through `crate::`.
fn module_graph(src: &Path) -> Edges {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let modules: Vec<String> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    let mut edges = Edges::new();
    for module in &modules {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        files.push(src.join(format!("{module}.rs")));
        let named = edges.entry(module.clone()).or_default();
        for file in files.iter().filter(|f| f.is_file()) {
            let text = fs::read_to_string(file).expect("a source file");
            for (at, other) in referenced(&text) {
                if other != *module && modules.contains(&other) {
                    let line = text[..at].matches('\n').count() + 1;
                    let rel = file.strip_prefix(src).unwrap_or(file);
                    named
                        .entry(other)
                        .or_insert_with(|| format!("src/{}:{line}", rel.display()));
                }
            }
        }
    }
    edges
}

/// The parts of the module in `dir` (its files but mod.rs, its folders),
/// each with the parts it names by `super::` (from its own file or its
/// folder's mod.rs) or by `crate::<module>::`, outside its unit tests.
fn parts_graph(dir: &Path) -> Edges {
    let module = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut parts = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("a module folder").flatten() {
        let path = entry.path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            parts.insert(stem, path.join("mod.rs"));
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "mod" {
            parts.insert(stem, path);
        }
    }
    let mut edges = Edges::new();
    for (part, file) in &parts {
        let named = edges.entry(part.clone()).or_default();
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let qualified = format!("crate::{module}::");
        for prefix in ["super::", qualified.as_str()] {
            for (at, _) in code.match_indices(prefix) {
                let other: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if other != *part && parts.contains_key(&other) {
                    named
                        .entry(other)
                        .or_insert_with(|| file.display().to_string());
                }
            }
        }
    }
    edges
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first path segment after each `crate::` in `text`, and each
/// top-level name of a `crate::{a, b::c}` group (which may span lines),
/// with the offset of its `crate::`.
fn referenced(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("crate::") {
        let at = from + found;
        from = at + "crate::".len();
        let rest = &text[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut name = String::new();
            let mut expect_name = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if depth == 1 && expect_name && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if !name.is_empty() => {
                        out.push((at, std::mem::take(&mut name)));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.push((at, name));
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((at, name));
        }
    }
    out
}

/// A circle in the graph, as the modules along it (the first repeated at
/// the end), or `None` when the graph has none.
fn find_circle(edges: &Edges) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &Edges,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flat_map(|m| m.keys()) {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut circle = path[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, edges, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            let mut path = Vec::new();
            if let Some(c) = visit(node, edges, &mut marks, &mut path) {
                return Some(c);
            }
        }
    }
    None
}
