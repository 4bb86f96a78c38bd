//! `cargo xtask new-provider NAME`: a provider that passes the whole suite as generated.
//!
//! It writes
//! - `crates/providers/NAME/` (package `llmux-provider-NAME`): the provider with unit tests and
//!   an end-to-end test against its fake, through the facade;
//! - `crates/llmux-testkit/src/IDENT.rs`: the fake upstream;
//! - `tests/src/matrix/IDENT.rs`: its fault-matrix target;
//!
//! and wires it in: the workspace dependency (root `Cargo.toml`), the facade's feature,
//! optional dependency and `default` entry (`crates/llmux/Cargo.toml`) — manifests are edited
//! with `toml_edit`, so their comments and layout stay — and one line each above the
//! `// @…` markers of the facade's re-exports, the testkit's modules, the `llmux-mock`
//! subcommands and the matrix's targets. The workspace `tests/` crate and the facade's feature
//! test need nothing: they take every default feature.
//!
//! Everything is computed first and written only when every edit applies, so a failed run
//! leaves the tree as it was.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

const PROVIDER_LIB: &str = include_str!("../templates/provider_lib.rs.tmpl");
const PROVIDER_E2E: &str = include_str!("../templates/provider_e2e.rs.tmpl");
const PROVIDER_MANIFEST: &str = include_str!("../templates/provider_Cargo.toml.tmpl");
const PROVIDER_README: &str = include_str!("../templates/provider_README.md.tmpl");
const TESTKIT_FAKE: &str = include_str!("../templates/testkit_fake.rs.tmpl");
const MATRIX_TARGET: &str = include_str!("../templates/matrix_target.rs.tmpl");
const MOCK_ARGS: &str = include_str!("../templates/mock_args.rs.tmpl");

/// Rust keywords (and names the facade already uses) a provider's identifier may not be.
const RESERVED: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "core", "crate", "dyn", "else",
    "enum", "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match",
    "mod", "move", "mut", "pub", "ref", "return", "self", "static", "std", "struct", "super",
    "trait", "true", "try", "type", "unsafe", "use", "where", "while", "yield",
];

/// The spellings of a provider name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `my-upstream`: the llmux name, the feature and the `llmux-mock` subcommand.
    pub name: String,
    /// `my_upstream`: module and re-export identifier.
    pub ident: String,
    /// `MyUpstream`: the provider type and the g4f name.
    pub ty: String,
    /// `llmux-provider-my-upstream`: the package.
    pub krate: String,
    /// `llmux_provider_my_upstream`: the package as a Rust path.
    pub krate_ident: String,
    /// `MY_UPSTREAM`: the environment-variable infix (`LLMUX_MY_UPSTREAM_BASE_URL`).
    pub env: String,
}

impl Names {
    /// The spellings of `name`: lower-case ASCII letters, digits and single `-` between words,
    /// starting with a letter.
    pub fn new(name: &str) -> Result<Names, String> {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.ends_with('-')
            && !name.contains("--");
        if !valid {
            return Err(format!(
                "invalid provider name `{name}`: use lower-case letters, digits and single `-`, starting with a letter"
            ));
        }
        let ident = name.replace('-', "_");
        if RESERVED.contains(&ident.as_str()) {
            return Err(format!(
                "invalid provider name `{name}`: `{ident}` is reserved in Rust or in the facade"
            ));
        }
        let ty = pascal(name);
        let krate = format!("llmux-provider-{name}");
        Ok(Names {
            krate_ident: krate.replace('-', "_"),
            env: ident.to_ascii_uppercase(),
            name: name.to_owned(),
            ident,
            ty,
            krate,
        })
    }

    /// `template` with every placeholder replaced.
    pub fn render(&self, template: &str) -> String {
        // longest placeholders first (`__CRATE_IDENT__` before `__CRATE__`… they do not overlap,
        // but the order keeps it obvious)
        template
            .replace("__CRATE_IDENT__", &self.krate_ident)
            .replace("__CRATE__", &self.krate)
            .replace("__IDENT__", &self.ident)
            .replace("__TYPE__", &self.ty)
            .replace("__NAME__", &self.name)
            .replace("__ENV__", &self.env)
    }
}

/// `microsoft-phi-4` → `MicrosoftPhi4`.
pub fn pascal(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn parse(manifest: &str, what: &str) -> Result<DocumentMut, String> {
    manifest
        .parse::<DocumentMut>()
        .map_err(|e| format!("{what} is not valid TOML: {e}"))
}

/// The table at `path` (`["workspace", "dependencies"]`), which must exist.
fn table_mut<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut Table, String> {
    let mut item: &mut Item = doc.as_item_mut();
    for key in path {
        item = item
            .get_mut(key)
            .ok_or_else(|| format!("no `[{}]` table", path.join(".")))?;
    }
    item.as_table_mut()
        .ok_or_else(|| format!("`{}` is not a table", path.join(".")))
}

fn inline(pairs: &[(&str, Value)]) -> Value {
    let mut t = InlineTable::new();
    for (k, v) in pairs {
        t.insert(*k, v.clone());
    }
    Value::InlineTable(t)
}

/// The root manifest's `[workspace.package] version`.
pub fn workspace_version(root_manifest: &str) -> Result<String, String> {
    let doc = parse(root_manifest, "Cargo.toml")?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(Item::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "no `[workspace.package] version` in Cargo.toml".to_owned())
}

/// Adds `krate = { path = …, version = … }` to `[workspace.dependencies]`.
pub fn add_workspace_dependency(
    root_manifest: &str,
    krate: &str,
    path: &str,
    version: &str,
) -> Result<String, String> {
    let mut doc = parse(root_manifest, "Cargo.toml")?;
    let deps = table_mut(&mut doc, &["workspace", "dependencies"])?;
    if deps.contains_key(krate) {
        return Err(format!("`{krate}` is already a workspace dependency"));
    }
    deps.insert(
        krate,
        Item::Value(inline(&[
            ("path", path.into()),
            ("version", version.into()),
        ])),
    );
    Ok(doc.to_string())
}

/// Adds the provider feature `feature = ["dep:krate"]` to the facade, puts it into `default`,
/// and adds `krate = { workspace = true, optional = true }` to its `[dependencies]`.
pub fn add_facade_feature(
    facade_manifest: &str,
    feature: &str,
    krate: &str,
) -> Result<String, String> {
    let mut doc = parse(facade_manifest, "crates/llmux/Cargo.toml")?;
    let features = table_mut(&mut doc, &["features"])?;
    if features.contains_key(feature) {
        return Err(format!("the facade already has a feature `{feature}`"));
    }
    let default = features
        .get_mut("default")
        .and_then(Item::as_array_mut)
        .ok_or("the facade has no `default` feature list")?;
    default.push(feature);
    let mut enables = Array::new();
    enables.push(format!("dep:{krate}"));
    features.insert(feature, Item::Value(Value::Array(enables)));
    let deps = table_mut(&mut doc, &["dependencies"])?;
    if deps.contains_key(krate) {
        return Err(format!("the facade already depends on `{krate}`"));
    }
    deps.insert(
        krate,
        Item::Value(inline(&[
            ("workspace", true.into()),
            ("optional", true.into()),
        ])),
    );
    Ok(doc.to_string())
}

/// Makes sure `[dependencies] dep` of `manifest` enables `feature`: nothing to do when its
/// `features` hold `default` (every default feature) or `feature` already, else `feature` is
/// added. `None` when the manifest does not depend on `dep` at all.
pub fn enable_dependency_feature(
    manifest: &str,
    dep: &str,
    feature: &str,
) -> Result<Option<String>, String> {
    let mut doc = parse(manifest, "manifest")?;
    let Some(entry) = doc
        .get_mut("dependencies")
        .and_then(Item::as_table_like_mut)
        .and_then(|deps| deps.get_mut(dep))
    else {
        return Ok(None);
    };
    let table = entry
        .as_table_like_mut()
        .ok_or_else(|| format!("dependency `{dep}` is not a table"))?;
    let features = match table.get_mut("features") {
        Some(f) => f
            .as_array_mut()
            .ok_or_else(|| format!("`{dep}.features` is not an array"))?,
        None => {
            table.insert("features", Item::Value(Value::Array(Array::new())));
            table
                .get_mut("features")
                .and_then(Item::as_array_mut)
                .ok_or("cannot add `features`")?
        }
    };
    if features
        .iter()
        .any(|f| matches!(f.as_str(), Some(s) if s == "default" || s == feature))
    {
        return Ok(Some(manifest.to_owned()));
    }
    features.push(feature);
    Ok(Some(doc.to_string()))
}

/// Inserts `line` (indented like the marker) on its own line right above the line holding
/// `marker`.
pub fn insert_above_marker(text: &str, marker: &str, line: &str) -> Result<String, String> {
    let at = text
        .find(marker)
        .ok_or_else(|| format!("marker `{marker}` not found"))?;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..at];
    if !indent.chars().all(char::is_whitespace) {
        return Err(format!("marker `{marker}` must start its line"));
    }
    Ok(format!(
        "{}{indent}{line}\n{}",
        &text[..line_start],
        &text[line_start..]
    ))
}

/// One file to write: its path under the workspace and its new content.
#[derive(Debug)]
pub struct Write {
    /// Path relative to the workspace root.
    pub path: PathBuf,
    /// The whole new content.
    pub content: String,
    /// True for a file that must not exist yet.
    pub create: bool,
}

fn read(root: &Path, rel: &str) -> Result<String, String> {
    fs::read_to_string(root.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
}

/// Every file `new-provider` writes for `names` in the workspace at `root`.
pub fn plan(root: &Path, names: &Names) -> Result<Vec<Write>, String> {
    let n = names;
    let dir = format!("crates/providers/{}", n.name);
    let mut out = vec![
        Write {
            path: format!("{dir}/Cargo.toml").into(),
            content: n.render(PROVIDER_MANIFEST),
            create: true,
        },
        Write {
            path: format!("{dir}/README.md").into(),
            content: n.render(PROVIDER_README),
            create: true,
        },
        Write {
            path: format!("{dir}/src/lib.rs").into(),
            content: n.render(PROVIDER_LIB),
            create: true,
        },
        Write {
            path: format!("{dir}/tests/e2e.rs").into(),
            content: n.render(PROVIDER_E2E),
            create: true,
        },
        Write {
            path: format!("crates/llmux-testkit/src/{}.rs", n.ident).into(),
            content: n.render(TESTKIT_FAKE),
            create: true,
        },
        Write {
            path: format!("tests/src/matrix/{}.rs", n.ident).into(),
            content: n.render(MATRIX_TARGET),
            create: true,
        },
    ];
    for w in &out {
        if root.join(&w.path).exists() {
            return Err(format!("{} already exists", w.path.display()));
        }
    }
    if root.join(&dir).exists() {
        return Err(format!("{dir} already exists"));
    }

    let root_manifest = read(root, "Cargo.toml")?;
    let version = workspace_version(&root_manifest)?;
    out.push(Write {
        path: "Cargo.toml".into(),
        content: add_workspace_dependency(&root_manifest, &n.krate, &dir, &version)?,
        create: false,
    });
    out.push(Write {
        path: "crates/llmux/Cargo.toml".into(),
        content: add_facade_feature(&read(root, "crates/llmux/Cargo.toml")?, &n.name, &n.krate)?,
        create: false,
    });
    // the tests crate takes every default feature; an explicit list gets the new one
    if let Some(tests) =
        enable_dependency_feature(&read(root, "tests/Cargo.toml")?, "llmux", &n.name)?
    {
        out.push(Write {
            path: "tests/Cargo.toml".into(),
            content: tests,
            create: false,
        });
    }

    let lines = |rel: &str, edits: &[(&str, String)]| -> Result<Write, String> {
        let mut text = read(root, rel)?;
        for (marker, line) in edits {
            text = insert_above_marker(&text, marker, line).map_err(|e| format!("{rel}: {e}"))?;
        }
        Ok(Write {
            path: rel.into(),
            content: text,
            create: false,
        })
    };
    out.push(lines(
        "crates/llmux/src/lib.rs",
        &[(
            "// @provider-reexports",
            format!(
                "#[cfg(feature = \"{}\")]\npub use {} as {};",
                n.name, n.krate_ident, n.ident
            ),
        )],
    )?);
    out.push(lines(
        "crates/llmux-testkit/src/lib.rs",
        &[("// @testkit-fakes", format!("pub mod {};", n.ident))],
    )?);
    let mut mock = lines(
        "crates/llmux-testkit/src/bin/llmux-mock.rs",
        &[
            (
                "// @mock-commands",
                format!(
                    "/// A fake {} upstream (scaffolded: /v1/chat, JSON-lines replies).\n    #[command(name = \"{}\")]\n    {}({}Args),",
                    n.name, n.name, n.ty, n.ty
                ),
            ),
            (
                "// @mock-dispatch",
                format!(
                    "Command::{}(args) => (args.listen.clone(), args.router()),",
                    n.ty
                ),
            ),
        ],
    )?;
    mock.content.push_str(&n.render(MOCK_ARGS));
    out.push(mock);
    out.push(lines(
        "tests/src/matrix.rs",
        &[
            ("// @matrix-modules", format!("mod {};", n.ident)),
            ("// @matrix-targets", format!("{}::target(),", n.ident)),
        ],
    )?);
    Ok(out)
}

/// Scaffolds the provider `name` in the workspace at `root`; returns the files written.
pub fn new_provider(root: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    let names = Names::new(name)?;
    let writes = plan(root, &names)?;
    for w in &writes {
        let path = root.join(&w.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let written = if w.create {
            // never overwrite: a file that appeared since the plan is an error
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| f.write_all(w.content.as_bytes()))
        } else {
            fs::write(&path, &w.content)
        };
        written.map_err(|e| format!("cannot write {}: {e}", w.path.display()))?;
    }
    Ok(writes.into_iter().map(|w| w.path).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.3.1" # the release

[workspace.dependencies]
# internal crates
llmux-core = { path = "crates/llmux-core", version = "0.3.1" }

# external
tokio = { version = "1", default-features = false }
[workspace.lints.rust]
unsafe_code = "forbid"
"#;

    const FACADE: &str = r#"[package]
name = "llmux"

[features]
flowgpt = ["dep:llmux-provider-flowgpt"]
default = ["flowgpt"]

[dependencies]
# providers are optional
llmux-provider-flowgpt = { workspace = true, optional = true }
llmux-core = { workspace = true }
"#;

    #[test]
    fn names() {
        let n = Names::new("microsoft-phi-4").expect("valid");
        assert_eq!(n.ident, "microsoft_phi_4");
        assert_eq!(n.ty, "MicrosoftPhi4");
        assert_eq!(n.krate, "llmux-provider-microsoft-phi-4");
        assert_eq!(n.krate_ident, "llmux_provider_microsoft_phi_4");
        assert_eq!(n.env, "MICROSOFT_PHI_4");
        for bad in [
            "Bad_Name",
            "-x",
            "x-",
            "4chan",
            "a--b",
            "",
            "core",
            "self",
            "my upstream",
        ] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            n.render("__CRATE_IDENT__::__TYPE__ __CRATE__ __NAME__ __IDENT__ LLMUX___ENV___URL"),
            "llmux_provider_microsoft_phi_4::MicrosoftPhi4 llmux-provider-microsoft-phi-4 microsoft-phi-4 microsoft_phi_4 LLMUX_MICROSOFT_PHI_4_URL"
        );
    }

    #[test]
    fn workspace_dependency_is_added_and_the_rest_kept() {
        assert_eq!(workspace_version(ROOT).as_deref(), Ok("0.3.1"));
        let out = add_workspace_dependency(ROOT, "llmux-provider-x", "crates/providers/x", "0.3.1")
            .expect("edited");
        // the new entry, and every comment and line of the original
        let doc: DocumentMut = out.parse().expect("valid TOML");
        let dep = &doc["workspace"]["dependencies"]["llmux-provider-x"];
        assert_eq!(dep["path"].as_str(), Some("crates/providers/x"));
        assert_eq!(dep["version"].as_str(), Some("0.3.1"));
        assert!(dep.is_inline_table());
        for line in ROOT.lines() {
            assert!(out.contains(line), "lost {line:?}");
        }
        assert_eq!(out.lines().count(), ROOT.lines().count() + 1);
        assert!(out.contains(
            "llmux-provider-x = { path = \"crates/providers/x\", version = \"0.3.1\" }\n"
        ));
        // twice is refused
        assert!(add_workspace_dependency(&out, "llmux-provider-x", "p", "1").is_err());
        assert!(add_workspace_dependency("[package]\n", "a", "p", "1").is_err());
        assert!(add_workspace_dependency("not = [toml", "a", "p", "1").is_err());
    }

    #[test]
    fn facade_gets_feature_default_and_optional_dependency() {
        let out = add_facade_feature(FACADE, "my-up", "llmux-provider-my-up").expect("edited");
        let doc: DocumentMut = out.parse().expect("valid TOML");
        let enables: Vec<&str> = doc["features"]["my-up"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(enables, ["dep:llmux-provider-my-up"]);
        let default: Vec<&str> = doc["features"]["default"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(default, ["flowgpt", "my-up"]);
        assert!(out.contains("default = [\"flowgpt\", \"my-up\"]\n"));
        let dep = &doc["dependencies"]["llmux-provider-my-up"];
        assert_eq!(dep["workspace"].as_bool(), Some(true));
        assert_eq!(dep["optional"].as_bool(), Some(true));
        assert!(out.contains("# providers are optional\n"));
        assert!(out.contains("llmux-core = { workspace = true }\n"));
        // the same feature twice, or a facade without `default`, is refused
        assert!(add_facade_feature(&out, "my-up", "llmux-provider-my-up").is_err());
        assert!(add_facade_feature("[features]\n[dependencies]\n", "a", "b").is_err());
    }

    #[test]
    fn dependency_features_are_enabled_only_when_listed() {
        let all = "[dependencies]\nllmux = { workspace = true, features = [\"default\"] }\n";
        assert_eq!(
            enable_dependency_feature(all, "llmux", "x")
                .expect("ok")
                .as_deref(),
            Some(all)
        );
        let listed = "[dependencies]\nllmux = { workspace = true, features = [\"a\"] } # e2e\n";
        let out = enable_dependency_feature(listed, "llmux", "x")
            .expect("ok")
            .expect("edited");
        assert_eq!(
            out,
            "[dependencies]\nllmux = { workspace = true, features = [\"a\", \"x\"] } # e2e\n"
        );
        let bare = "[dependencies.llmux]\nworkspace = true\n";
        let out = enable_dependency_feature(bare, "llmux", "x")
            .expect("ok")
            .expect("edited");
        let doc: DocumentMut = out.parse().expect("valid TOML");
        assert_eq!(
            doc["dependencies"]["llmux"]["features"][0].as_str(),
            Some("x")
        );
        assert_eq!(
            enable_dependency_feature("[dependencies]\nserde = \"1\"\n", "llmux", "x").expect("ok"),
            None
        );
    }

    #[test]
    fn lines_go_above_their_marker() {
        let text = "vec![\n    a(),\n    // @targets (inserted above)\n]\n";
        assert_eq!(
            insert_above_marker(text, "// @targets", "b(),").as_deref(),
            Ok("vec![\n    a(),\n    b(),\n    // @targets (inserted above)\n]\n")
        );
        assert_eq!(
            insert_above_marker("// @m\n", "// @m", "x;").as_deref(),
            Ok("x;\n// @m\n")
        );
        assert!(insert_above_marker("no marker", "// @m", "x").is_err());
        assert!(insert_above_marker("code(); // @m\n", "// @m", "x").is_err());
    }

    /// `new_provider` on a miniature workspace: every file written, every list wired; a second
    /// run, or a run with a marker missing, writes nothing.
    #[test]
    fn new_provider_writes_and_wires_a_sample_workspace() {
        let root = std::env::temp_dir().join(format!("xtask-scaffold-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let files = [
            ("Cargo.toml", ROOT),
            ("crates/llmux/Cargo.toml", FACADE),
            (
                "crates/llmux/src/lib.rs",
                "pub use a as b;\n// @provider-reexports\n",
            ),
            (
                "crates/llmux-testkit/src/lib.rs",
                "pub mod openai;\n\n// @testkit-fakes\n",
            ),
            (
                "crates/llmux-testkit/src/bin/llmux-mock.rs",
                "enum Command {\n    Openai(OpenAiArgs),\n    // @mock-commands\n}\nfn main() {\n    match c {\n        // @mock-dispatch\n    }\n}\n",
            ),
            (
                "tests/Cargo.toml",
                "[dependencies]\nllmux = { workspace = true, features = [\"flowgpt\"] }\n",
            ),
            (
                "tests/src/matrix.rs",
                "// @matrix-modules\nfn targets() {\n    vec![\n        // @matrix-targets\n    ]\n}\n",
            ),
        ];
        for (path, text) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("dir");
            fs::write(p, text).expect("write");
        }
        let read = |p: &str| fs::read_to_string(root.join(p)).expect("read");

        let written = new_provider(&root, "my-up").expect("scaffolded");
        assert_eq!(written.len(), 13, "{written:?}");
        for p in [
            "crates/providers/my-up/Cargo.toml",
            "crates/providers/my-up/README.md",
            "crates/providers/my-up/src/lib.rs",
            "crates/providers/my-up/tests/e2e.rs",
            "crates/llmux-testkit/src/my_up.rs",
            "tests/src/matrix/my_up.rs",
        ] {
            assert!(root.join(p).is_file(), "{p}");
        }
        let lib = read("crates/providers/my-up/src/lib.rs");
        assert!(lib.contains("pub struct MyUp {"));
        assert!(lib.contains("name: \"my-up\",\n    g4f_name: \"MyUp\","));
        // declared once in REGISTRATION; the other two are the doc example's
        assert_eq!(lib.matches("\"my-up\"").count(), 3);
        assert_eq!(lib.matches("\"MyUp\"").count(), 1);
        assert_eq!(
            lib.matches("origins: &[(\"base\", DEFAULT_BASE_URL)]")
                .count(),
            1
        );
        assert!(
            read("Cargo.toml")
                .contains("llmux-provider-my-up = { path = \"crates/providers/my-up\"")
        );
        assert!(read("crates/llmux/Cargo.toml").contains("my-up = [\"dep:llmux-provider-my-up\"]"));
        assert!(read("tests/Cargo.toml").contains("features = [\"flowgpt\", \"my-up\"]"));
        assert_eq!(
            read("crates/llmux/src/lib.rs"),
            "pub use a as b;\n#[cfg(feature = \"my-up\")]\npub use llmux_provider_my_up as my_up;\n// @provider-reexports\n"
        );
        assert_eq!(
            read("crates/llmux-testkit/src/lib.rs"),
            "pub mod openai;\n\npub mod my_up;\n// @testkit-fakes\n"
        );
        let mock = read("crates/llmux-testkit/src/bin/llmux-mock.rs");
        assert!(mock.contains("    MyUp(MyUpArgs),\n    // @mock-commands"));
        assert!(mock.contains("        Command::MyUp(args) => (args.listen.clone(), args.router()),\n        // @mock-dispatch"));
        assert!(mock.contains("struct MyUpArgs {"));
        assert_eq!(
            read("tests/src/matrix.rs"),
            "mod my_up;\n// @matrix-modules\nfn targets() {\n    vec![\n        my_up::target(),\n        // @matrix-targets\n    ]\n}\n"
        );

        // again: refused, nothing changed
        let before = read("crates/llmux/Cargo.toml");
        assert!(new_provider(&root, "my-up").is_err());
        assert_eq!(read("crates/llmux/Cargo.toml"), before);
        // a missing marker: refused before anything is written
        fs::write(root.join("tests/src/matrix.rs"), "fn targets() {}\n").expect("write");
        let err = new_provider(&root, "other").expect_err("no marker");
        assert!(err.contains("@matrix-modules"), "{err}");
        assert!(!root.join("crates/providers/other").exists());
        assert!(!read("crates/llmux/Cargo.toml").contains("other"));
        let _ = fs::remove_dir_all(&root);
    }

    /// The plan for this very workspace applies: every marker and table is where it is expected,
    /// and nothing is written.
    #[test]
    fn plan_applies_to_this_workspace() {
        let root = crate::root();
        let names = Names::new("plan-probe").expect("valid");
        let writes = plan(&root, &names).expect("plan");
        let paths: Vec<String> = writes
            .iter()
            .map(|w| w.path.display().to_string())
            .collect();
        for expected in [
            "crates/providers/plan-probe/src/lib.rs",
            "crates/providers/plan-probe/tests/e2e.rs",
            "crates/llmux-testkit/src/plan_probe.rs",
            "tests/src/matrix/plan_probe.rs",
            "Cargo.toml",
            "crates/llmux/Cargo.toml",
            "crates/llmux/src/lib.rs",
            "crates/llmux-testkit/src/lib.rs",
            "crates/llmux-testkit/src/bin/llmux-mock.rs",
            "tests/src/matrix.rs",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} in {paths:?}"
            );
        }
        for w in &writes {
            for placeholder in ["__NAME__", "__IDENT__", "__TYPE__", "__CRATE", "__ENV__"] {
                assert!(
                    !w.content.contains(placeholder),
                    "{placeholder} left in {}",
                    w.path.display()
                );
            }
        }
        let mock = writes
            .iter()
            .find(|w| w.path.ends_with("llmux-mock.rs"))
            .expect("mock");
        assert!(mock.content.contains("PlanProbe(PlanProbeArgs),"));
        assert!(mock.content.contains("#[command(name = \"plan-probe\")]"));
        assert!(!root.join("crates/providers/plan-probe").exists());
        // an existing provider is refused
        assert!(plan(&root, &Names::new("flowgpt").expect("valid")).is_err());
    }
}
