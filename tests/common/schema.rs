//! The published JSON Schemas of the `--json` outputs (docs/schema/), so that every test that
//! parses one of them also proves it still matches its contract:
//!
//! ```ignore
//! let r = run.report();
//! common::schema::assert_valid(Kind::Run, &r);
//! ```
//!
//! Each schema is read and compiled once per test process (formats such as `ipv4` checked too).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// Which `--json` output a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `lab run --json` (and `--out DIR`'s report.json).
    Run,
    /// `lab check FILE --json`.
    Check,
    /// `lab list --json`.
    List,
    /// `lab nat LAB [HOST] --json`.
    Nat,
    /// `lab plan --connections N --json`.
    Plan,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Run, Kind::Check, Kind::List, Kind::Nat, Kind::Plan];

    /// `run`, `check`, `list`, `nat` or `plan`: the verb, and the schema's file name stem.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Check => "check",
            Kind::List => "list",
            Kind::Nat => "nat",
            Kind::Plan => "plan",
        }
    }

    /// docs/schema/<kind>.schema.json in the checkout.
    pub fn path(self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs/schema")
            .join(format!("{}.schema.json", self.name()))
    }

    /// The schema document.
    pub fn schema(self) -> Value {
        let path = self.path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    }

    /// The compiled schema (draft 2020-12, formats validated), built once per process.
    pub fn validator(self) -> &'static jsonschema::Validator {
        static COMPILED: [OnceLock<jsonschema::Validator>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        COMPILED[self as usize].get_or_init(|| {
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&self.schema())
                .unwrap_or_else(|e| panic!("{} does not compile: {e}", self.path().display()))
        })
    }
}

/// Longest message shown per error: messages quote the offending value, which may be a whole
/// report.
const MESSAGE_MAX: usize = 300;

/// Every way `doc` breaks the schema of `kind`, one line each: where in the document (a JSON
/// pointer), what is wrong, and which rule of the schema says so. Empty when it is valid.
pub fn errors(kind: Kind, doc: &Value) -> Vec<String> {
    kind.validator()
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path().to_string();
            let mut message = e.to_string();
            if message.len() > MESSAGE_MAX {
                let mut end = MESSAGE_MAX;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                message.push_str("...");
            }
            format!(
                "at {}: {message} (schema {})",
                if at.is_empty() { "/" } else { &at },
                e.schema_path()
            )
        })
        .collect()
}

/// Panics, listing every validation error, unless `doc` matches the schema of `kind`.
pub fn assert_valid(kind: Kind, doc: &Value) {
    let errors = errors(kind, doc);
    assert!(
        errors.is_empty(),
        "`lab {} --json` output does not match {} ({} error{}):\n  {}",
        kind.name(),
        kind.path().display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        errors.join("\n  ")
    );
}

/// Parses `text` as JSON, asserts it matches the schema of `kind`, and returns it.
pub fn parse_valid(kind: Kind, text: &str) -> Value {
    let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| {
        panic!(
            "`lab {} --json` printed no JSON ({e}):\n{text}",
            kind.name()
        )
    });
    assert_valid(kind, &doc);
    doc
}
