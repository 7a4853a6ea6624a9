//! The layer check: every `crate::…` path in the gateway's sources (outside tests) names a module of a lower
//! layer, or its own module. A feature does not reach into another feature; shared pieces go down a layer.

use std::path::Path;

/// The top-level modules, lowest layer first; modules in one entry are peers that must not import each other.
const LAYERS: &[&[&str]] = &[
    &["config"],
    &["domain"],
    &["http"],
    &["upstream", "broker"],
    &["state"],
    &["login", "oidc", "saml", "proxy", "scim", "health", "import"],
    &["app"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level modules a source file names through `crate::`, test modules left out.
fn references(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c};`: the first segment of every path in the group.
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').filter_map(|p| first_segment(p.trim())));
        } else if let Some(name) = first_segment(rest) {
            out.push(name);
        }
    }
    out
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_lowercase())).then_some(name)
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_run_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let top = rel.iter().next().and_then(|s| s.to_str()).unwrap_or_default().trim_end_matches(".rs");
        if matches!(top, "lib" | "main" | "layers") || rel.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let Some(own) = layer_of(top) else {
            wrong.push(format!("{}: module `{top}` is in no layer; add it to layers::LAYERS", rel.display()));
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap_or_default();
        for module in references(&source) {
            checked += 1;
            if module == top {
                continue;
            }
            match layer_of(&module) {
                Some(l) if l < own => {}
                Some(_) => {
                    wrong.push(format!("{}: `{top}` imports `crate::{module}`, which is not below it", rel.display()))
                }
                None => wrong.push(format!("{}: `crate::{module}` is in no layer", rel.display())),
            }
        }
    }
    assert!(checked > 100, "only {checked} crate paths found; has the source moved?");
    assert!(wrong.is_empty(), "imports that run up or across a layer:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_groups_and_paths() {
    let found =
        references("use crate::{config::X, domain::y};\nfn f() { crate::http::z(); }\n#[cfg(test)]\nuse crate::cli;");
    assert_eq!(found, ["config", "domain", "http"]);
}
