//! Architecture fitness: the layers of the service, checked from its source so
//! they stay as drawn. Data flows one way: `api/` (parse, authorise, call a
//! use-case, map its error) → the use-case modules → `klynge-index` /
//! `klynge-models`. The test reads every `src/**/*.rs` file (comments, string
//! contents and `#[cfg(test)]` modules left out), collects the modules each one
//! names through `crate::…` or `super::…` paths, and fails
//! - on an import cycle between modules (a module is a file under `src/`; all of
//!   `api/` counts as one, the layer it is, and so does all of `lab/`);
//! - on `api/` naming `klynge_index` at all, or `klynge_models` beyond the shared
//!   domain types (the firm profile, kinds, sizes, ids, NACE codes,
//!   collaborations: the items `models/src/lib.rs` re-exports from `firm`,
//!   `collaboration` and `nace`); the use-case modules re-export what handlers
//!   need of the rest (`engine::{SearchRequest, StoredFirm, Relation}`,
//!   `networks::STAGES`);
//! - on a module other than `app` (which assembles the service) naming `api`;
//! - on a module other than `cli` (the command line) naming `lab`, the benchmark
//!   and generator code: the service does not depend on it;
//! - on `api/` calling `.index()`: handlers ask the engine's use-cases (its
//!   catalogue reads included), never the index behind it;
//! - on a Rust source file under `src/`, `models/src` or `index/src` over
//!   [`MAX_LINES`] lines.
//!
//! Pure Rust, no dependencies: it runs with the other integration tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges `(from, to)` known to lie on an import cycle, waiting to be broken.
/// Empty since issue 18 broke the last ones. It may only shrink: the test fails
/// on an edge on a cycle that is not listed here, and on a listed edge that no
/// longer lies on one (delete the entry).
const KNOWN_CYCLE_EDGES: &[(&str, &str)] = &[];

/// What `api/` may name in `klynge_models` besides the crate-root re-exports of
/// these modules: the shared domain vocabulary.
const DOMAIN_MODULES: &[&str] = &["firm", "collaboration", "nace"];

/// The only module that may depend on the API layer.
const ABOVE_API: &[&str] = &["app"];

/// The only module that may depend on the lab (benchmarks and generators).
const ABOVE_LAB: &[&str] = &["cli"];

/// Directories under `src/` that count as one node of the graph: a layer (`api/`)
/// or a tree kept apart from the service (`lab/`). Other directories are
/// modules split into files, each file its own node.
const ONE_NODE: &[&str] = &["api", "lab"];

/// Longest a Rust source file may be: past it, a file holds more than one idea.
const MAX_LINES: usize = 700;

/// Where one module names another: for the failure messages.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
}

/// The module graph: node → (node it names → first place it does).
type Graph = BTreeMap<String, BTreeMap<String, Site>>;

/// The source with comments removed and the contents of string and character
/// literals blanked (so neither a `crate::` in a message nor a brace in a string
/// counts); line breaks are kept so line numbers stay right.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push_str("r\"");
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                out.push(blank(chars[j]));
                j += 1;
            }
            out.push('"');
            i = j;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether an identifier ends just before `i` (so an `r` there is not a raw
/// string's prefix); a byte-string prefix `b` does not count.
fn ident_before(chars: &[char], i: usize) -> bool {
    let word = |k: usize| chars.get(k).is_some_and(|c| c.is_alphanumeric() || *c == '_');
    match i.checked_sub(1) {
        None => false,
        Some(k) if chars[k] == 'b' => k > 0 && word(k - 1),
        Some(k) => word(k),
    }
}

/// `code` without its `#[cfg(test)]` items (test modules may use anything).
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(start) = out.find("#[cfg(test)]") {
        let rest = &out[start..];
        // The item ends at its closing brace (a module, a function) or at `;`.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (offset, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = offset + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = offset + 1;
                    break;
                }
                _ => {}
            }
        }
        let lines = rest[..end].matches('\n').count();
        out.replace_range(start..start + end, &"\n".repeat(lines));
    }
    out
}

/// The paths named after `prefix` (`crate::`, `super::`, `klynge_models::`),
/// each as its segments, with the line it is on. A group `{a, b::c}` gives one
/// path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        // Whole names only: not `my_crate::`, not `klynge_index_size`.
        if code[..start].chars().next_back().is_some_and(word)
            || (prefix.ends_with(word) && code[from..].chars().next().is_some_and(word))
        {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        for path in expand(&code[from..]) {
            found.push((path, line));
        }
    }
    found
}

/// The paths at the start of `text`: `a::b::C`, or each member of `{…}`.
fn expand(text: &str) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut members = Vec::new();
        let mut member_start = 0;
        for (offset, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    members.push(&group[member_start..offset]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(&group[member_start..offset]);
                    member_start = offset + 1;
                }
                _ => {}
            }
        }
        return members.into_iter().filter(|m| !m.trim().is_empty()).flat_map(expand).collect();
    }
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            break;
        }
        rest = rest[name.len()..].trim_start();
        segments.push(name);
        match rest.strip_prefix("::") {
            Some(after) if !after.trim_start().starts_with('{') => rest = after.trim_start(),
            Some(after) => {
                return expand(after).into_iter().map(|tail| [segments.clone(), tail].concat()).collect();
            }
            None => break,
        }
    }
    vec![segments]
}

/// The module path of a file under `src/`: `engine`, `api::firms`, `api` (for
/// `api/mod.rs`); `None` for the crate roots.
fn module_of(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop()?.strip_suffix(".rs")?.to_string();
    if parts.is_empty() && (file == "lib" || file == "main") {
        return None;
    }
    if file != "mod" {
        parts.push(file);
    }
    Some(parts)
}

/// A module's node in the graph: itself, or `api` (`lab`) for anything under
/// `api/` (`lab/`).
fn node_of(module: &[String]) -> String {
    match module.first() {
        Some(top) if ONE_NODE.contains(&top.as_str()) => top.clone(),
        _ => module.join("::"),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module of a source tree: (module path, display name, code only).
fn modules(src: &Path) -> Vec<(Vec<String>, String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(src).expect("under src");
            let module = module_of(relative)?;
            let source = std::fs::read_to_string(&path).expect("readable source");
            Some((module, format!("src/{}", relative.display()), without_tests(&code_only(&source))))
        })
        .collect()
}

/// The graph of `modules`: an edge for each `crate::`/`super::` path that names
/// another node.
fn graph(modules: &[(Vec<String>, String, String)]) -> Graph {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|(m, _, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, file, code) in modules {
        let from = node_of(module);
        graph.entry(from.clone()).or_default();
        let mut named: Vec<(Vec<String>, usize)> = paths_after(code, "crate::");
        // `super::x` in `a::b` (a file `a/b.rs`) is `crate::a::x`; in `a/mod.rs`
        // the module is `a` and its parent the crate.
        let parent = &module[..module.len().saturating_sub(1)];
        for (path, line) in paths_after(code, "super::") {
            named.push(([parent.to_vec(), path].concat(), line));
        }
        for (path, line) in named {
            // The longest prefix of the path that is a module is what it names.
            let Some(target) = (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| known.contains(p)) else {
                continue;
            };
            let to = node_of(&target);
            if to != from {
                graph.get_mut(&from).expect("inserted").entry(to).or_insert(Site { file: file.clone(), line });
            }
        }
    }
    graph
}

/// The edges that lie on a cycle: `from → to` where `to` reaches `from`.
fn cycle_edges(graph: &Graph) -> BTreeSet<(String, String)> {
    let reaches = |start: &str, goal: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_string()];
        while let Some(node) = stack.pop() {
            if node == goal {
                return true;
            }
            if seen.insert(node.clone()) {
                stack.extend(graph.get(&node).into_iter().flat_map(|edges| edges.keys().cloned()));
            }
        }
        false
    };
    let mut edges = BTreeSet::new();
    for (from, targets) in graph {
        for to in targets.keys() {
            if reaches(to, from) {
                edges.insert((from.clone(), to.clone()));
            }
        }
    }
    edges
}

/// The names `klynge_models` re-exports at its root from the domain modules.
fn domain_reexports(lib: &str) -> BTreeSet<String> {
    let code = code_only(lib);
    let mut names = BTreeSet::new();
    for (path, _) in paths_after(&code, "pub use ") {
        if path.len() >= 2 && DOMAIN_MODULES.contains(&path[0].as_str()) {
            names.insert(path.last().expect("non-empty").clone());
        }
    }
    names
}

/// What `api/` must not name: every `klynge_index` path, and `klynge_models`
/// paths outside the domain modules and their root re-exports.
fn forbidden_in_api(modules: &[(Vec<String>, String, String)], domain: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, file, code) in modules {
        if node_of(module) != "api" {
            continue;
        }
        for (path, line) in paths_after(code, "klynge_index") {
            found.push(format!("{file}:{line}: klynge_index{}", if path.is_empty() { "" } else { "::…" }));
        }
        // `use klynge_index;` or `klynge_index::x` both start with the name.
        found.dedup();
        for (path, line) in paths_after(code, "klynge_models::") {
            let first = path.first().map(String::as_str).unwrap_or_default();
            if !DOMAIN_MODULES.contains(&first) && !domain.contains(first) {
                found.push(format!("{file}:{line}: klynge_models::{}", path.join("::")));
            }
        }
    }
    found
}

/// Where `api/` calls `.index()` (or `Engine::index`): the index handle behind
/// the use-cases.
fn index_calls_in_api(modules: &[(Vec<String>, String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (module, file, code) in modules {
        if node_of(module) != "api" {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squeezed.contains(".index()") || squeezed.contains("Engine::index(") {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

/// Rust source files over [`MAX_LINES`] lines under `roots`, with their length.
fn long_files(roots: &[PathBuf]) -> Vec<(String, usize)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for root in roots {
        rust_files(root, &mut files);
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).expect("readable source").lines().count();
            let shown = path.strip_prefix(base).unwrap_or(&path).display().to_string();
            (lines > MAX_LINES).then_some((shown, lines))
        })
        .collect()
}

/// The nodes other than `allowed` (and `target` itself) that name `target`.
fn dependents(graph: &Graph, target: &str, allowed: &[&str]) -> Vec<String> {
    graph
        .iter()
        .filter(|(from, targets)| targets.contains_key(target) && !allowed.contains(&from.as_str()))
        .map(|(from, targets)| format!("{from} ({}:{})", targets[target].file, targets[target].line))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycle_between_modules() {
    let graph = graph(&modules(&src()));
    assert!(graph.contains_key("engine") && graph.contains_key("api"), "the scan found the modules: {graph:?}");
    let cycles = cycle_edges(&graph);
    let known: BTreeSet<(String, String)> =
        KNOWN_CYCLE_EDGES.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<String> = cycles
        .difference(&known)
        .map(|(from, to)| {
            let site = &graph[from][to];
            format!("{from} → {to} ({}:{})", site.file, site.line)
        })
        .collect();
    assert!(
        new.is_empty(),
        "import edges on a cycle between src/ modules (data flows api → use-cases → index/models; \
         move the type or function so the arrow goes one way):\n  {}",
        new.join("\n  ")
    );
    let stale: Vec<_> = known.difference(&cycles).collect();
    assert!(stale.is_empty(), "KNOWN_CYCLE_EDGES lists edges no longer on a cycle; delete them: {stale:?}");
}

#[test]
fn the_api_uses_domain_types_not_index_or_model_internals() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/src/lib.rs")).unwrap();
    let domain = domain_reexports(&lib);
    assert!(domain.contains("Kind") && domain.contains("check_id"), "domain re-exports: {domain:?}");
    let found = forbidden_in_api(&modules(&src()), &domain);
    assert!(
        found.is_empty(),
        "api/ reaches past the use-cases (use the domain types, or what the use-case modules re-export):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn nothing_below_the_api_depends_on_it() {
    let graph = graph(&modules(&src()));
    let up = dependents(&graph, "api", ABOVE_API);
    assert!(up.is_empty(), "only {ABOVE_API:?} may depend on api/: {up:?}");
}

#[test]
fn the_service_does_not_depend_on_the_lab() {
    let graph = graph(&modules(&src()));
    assert!(graph.contains_key("lab") && graph["cli"].contains_key("lab"), "the scan found lab/: {graph:?}");
    let up = dependents(&graph, "lab", ABOVE_LAB);
    assert!(
        up.is_empty(),
        "only {ABOVE_LAB:?} may depend on lab/ (benchmark and generator code; the service must not): {up:?}"
    );
}

#[test]
fn handlers_do_not_reach_for_the_index() {
    let found = index_calls_in_api(&modules(&src()));
    assert!(
        found.is_empty(),
        "api/ calls the index behind the engine (add a use-case method, e.g. in engine/catalogue.rs):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_source_file_is_over_the_length_limit() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let long = long_files(&[src(), base.join("models/src"), base.join("index/src")]);
    assert!(long.is_empty(), "Rust source files over {MAX_LINES} lines (split them along their seams): {long:?}");
}

/// The checks above find what they are for: a cycle, a `super::` edge, an
/// internal import in the API, and nothing in comments, strings or tests.
#[test]
fn the_checks_catch_cycles_and_internal_imports_in_sample_code() {
    let sample = |name: &str, code: &str| -> (Vec<String>, String, String) {
        let module: Vec<String> = name.split("::").map(str::to_string).collect();
        (module, format!("src/{name}.rs"), without_tests(&code_only(code)))
    };
    let tree = vec![
        sample("engine", "use crate::{store::ModelStore, refresh::Precomputed};\n// crate::api\n"),
        sample("refresh", "use crate::engine::Engine;\nfn f() { let s = \"crate::api\"; let c = '\"'; }\n"),
        sample("store", "pub fn g() {}\n#[cfg(test)]\nmod tests { use crate::engine::Engine; }\n"),
        sample("api", "pub mod firms;\n"),
        sample(
            "api::firms",
            "use klynge_index::FirmIndex;\nuse klynge_models::{Kind, model::Relation};\nuse super::x;\n",
        ),
    ];
    let graph = graph(&tree);
    let cycles = cycle_edges(&graph);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(cycles, BTreeSet::from([pair("engine", "refresh"), pair("refresh", "engine")]));
    assert!(graph["engine"].contains_key("store"), "{graph:?}");
    assert!(!graph["store"].contains_key("engine"), "test modules are left out: {graph:?}");
    assert!(!graph["refresh"].contains_key("api"), "strings are left out: {graph:?}");
    assert!(!graph["engine"].contains_key("api"), "comments are left out: {graph:?}");
    let domain = domain_reexports("pub use firm::{Kind, check_id};\npub use collaboration::Collaboration;\n");
    assert_eq!(domain, BTreeSet::from(["Kind".to_string(), "check_id".to_string(), "Collaboration".to_string()]));
    let found = forbidden_in_api(&tree, &domain);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("klynge_index") && found[1].contains("model::Relation"), "{found:?}");

    // The lab is one node; a service module naming it is caught, `cli` is not.
    let tree = vec![
        sample("cli", "use crate::lab::eval;\n"),
        sample("lab", "pub mod eval;\n"),
        sample("lab::eval", "use crate::engine::Engine;\nuse super::synthetic;\n"),
        sample("lab::synthetic", "pub fn g() {}\n"),
        sample("engine", "fn f() { crate::lab::synthetic::g(); }\n"),
    ];
    let lab_graph = self::graph(&tree);
    assert!(lab_graph["lab"].contains_key("engine") && !lab_graph.contains_key("lab::eval"), "{lab_graph:?}");
    assert_eq!(dependents(&lab_graph, "lab", ABOVE_LAB), vec!["engine (src/engine.rs:1)".to_string()]);

    // `.index()` in a handler, however spaced; not in a comment, a string or a test.
    let tree = vec![
        sample("api::firms", "fn f(e: &E) { e.index().get_firm(\"x\"); }\nfn g(e: &E) { e\n    . index ( ); }\n"),
        sample(
            "api::health",
            "// engine.index()\nfn f() { let s = \".index()\"; }\n#[cfg(test)]\nmod t { fn f(e: &E) { e.index(); } }\n",
        ),
        sample("refresh", "fn f(e: &E) { e.index().generation(); }\n"),
    ];
    let found = index_calls_in_api(&tree);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("src/api::firms.rs:1:") && found[1].starts_with("src/api::firms.rs:3:"), "{found:?}");
}
