//! A new failure class, action or hold reason is guided by the compiler only if no match hides
//! it behind a catch-all. This test reads every source file of the crates (tests and
//! `#[cfg(test)]` code aside) and fails on a match whose arms name `FailureClass::`,
//! `ActionKind::`, `HoldReason::`, `Family::`, `JudgedOn::` or `Knob::` variants and which also has a `_` arm or a bare binding arm
//! (`other =>`): there, a new variant would compile and silently take the catch-all's way.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The enums whose variants carry the properties the rest of the code reads: a new variant must
/// stop the build wherever a match says what to do with each.
const ENUMS: &[&str] = &[
    "FailureClass",
    "ActionKind",
    "HoldReason",
    "Family",
    "JudgedOn",
    "Knob",
    "Fencing",
];

#[test]
fn no_catch_all_arm_over_classes_actions_or_hold_reasons() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for file in sources(&crates) {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut finder = Finder {
            file: file.strip_prefix(&crates).unwrap_or(&file),
            found: &mut found,
            function: String::new(),
        };
        finder.visit_file(&parsed);
    }
    assert!(
        found.is_empty(),
        "catch-all arms over {} (list each variant instead):\n{}",
        ENUMS.join(", "),
        found.join("\n")
    );
}

/// Every `.rs` file under `crates/*/src`.
fn sources(crates: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(crates)
        .expect("the crates directory")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

struct Finder<'a> {
    file: &'a Path,
    found: &'a mut Vec<String>,
    function: String,
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            self.function = f.sig.ident.to_string();
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function = f.sig.ident.to_string();
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        if m.arms.iter().any(|a| names_enum(&a.pat)) {
            for arm in m.arms.iter().filter(|a| catch_all(&a.pat)) {
                let pat = quote_pat(&arm.pat);
                self.found.push(format!(
                    "  {} in fn {}: `{pat} =>`",
                    self.file.display(),
                    self.function
                ));
            }
        }
        syn::visit::visit_expr_match(self, m);
    }
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        path.is_ident("test") || (path.is_ident("cfg") && quote_meta(a).contains("test"))
    })
}

/// Whether a pattern names a variant of one of the enums (`ActionKind::Cordon`, nested or not).
fn names_enum(pat: &syn::Pat) -> bool {
    let path_names = |path: &syn::Path| {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        segments.windows(2).any(|w| ENUMS.contains(&w[0].as_str()))
    };
    match pat {
        syn::Pat::Path(p) => path_names(&p.path),
        syn::Pat::TupleStruct(p) => path_names(&p.path) || p.elems.iter().any(names_enum),
        syn::Pat::Struct(p) => path_names(&p.path) || p.fields.iter().any(|f| names_enum(&f.pat)),
        syn::Pat::Or(p) => p.cases.iter().any(names_enum),
        syn::Pat::Tuple(p) => p.elems.iter().any(names_enum),
        syn::Pat::Reference(p) => names_enum(&p.pat),
        syn::Pat::Paren(p) => names_enum(&p.pat),
        syn::Pat::Ident(p) => p.subpat.as_ref().is_some_and(|(_, sub)| names_enum(sub)),
        _ => false,
    }
}

/// `_`, or a bare binding such as `other`: an arm that takes whatever the others did not.
fn catch_all(pat: &syn::Pat) -> bool {
    match pat {
        syn::Pat::Wild(_) => true,
        syn::Pat::Ident(p) => {
            p.subpat.is_none() && p.ident.to_string().starts_with(|c: char| c.is_lowercase())
        }
        _ => false,
    }
}

fn quote_pat(pat: &syn::Pat) -> String {
    use quote::ToTokens;
    pat.to_token_stream().to_string()
}

fn quote_meta(attr: &syn::Attribute) -> String {
    use quote::ToTokens;
    attr.meta.to_token_stream().to_string()
}
