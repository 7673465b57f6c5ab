//! The rules of the house, checked against the code: docs/architecture.md's table "Rules of
//! the house" says which rooms may print, speak netlink, enter a namespace, hold `unsafe`, or
//! import which module; this reads that table and every file of src/ and fails on a breach, so
//! neither the code nor the doc can drift from the other. No root needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One row of the table: its name, the tokens it is about, and the rooms allowed them.
#[derive(Debug)]
struct Rule {
    name: String,
    tokens: Vec<String>,
    rooms: Vec<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The backticked items of a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, t)| t.to_owned())
        .collect()
}

/// The rules as docs/architecture.md states them.
fn rules() -> Vec<Rule> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).expect("read doc");
    let section = doc
        .split("## Rules of the house")
        .nth(1)
        .expect("docs/architecture.md has a section `## Rules of the house`");
    let section = section.split("\n## ").next().unwrap_or(section);
    let rules: Vec<Rule> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a rule row has 3 cells: {l}");
            Rule {
                name: cells[0].to_owned(),
                tokens: ticked(cells[1]),
                rooms: ticked(cells[2]),
            }
        })
        .collect();
    assert!(rules.len() >= 5, "{rules:?}");
    for r in &rules {
        assert!(!r.tokens.is_empty() && !r.rooms.is_empty(), "{r:?}");
        for room in &r.rooms {
            assert!(
                repo().join(room).exists(),
                "rule `{}` names room {room}, which does not exist",
                r.name
            );
        }
    }
    rules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every file of src/ (path relative to the repository), with its code before the test
/// module and without comments, as (line number, line).
fn sources() -> BTreeMap<String, Vec<(usize, String)>> {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            let rel = p
                .strip_prefix(repo())
                .expect("under the repo")
                .to_string_lossy()
                .into_owned();
            let code = text
                .lines()
                .enumerate()
                .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .map(|(i, l)| (i + 1, l.to_owned()))
                .collect();
            (rel, code)
        })
        .collect()
}

fn in_room(file: &str, rooms: &[String]) -> bool {
    rooms
        .iter()
        .any(|r| file == r || (r.ends_with('/') && file.starts_with(r.as_str())))
}

/// Whether `token` occurs in `line` as itself, not inside a longer identifier.
fn occurs(line: &str, token: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = line[from..].find(token).map(|i| i + from) {
        let before = line[..at].chars().next_back();
        let starts_ident = token.chars().next().is_some_and(ident);
        if !(starts_ident && before.is_some_and(ident)) {
            return true;
        }
        from = at + token.len();
    }
    false
}

fn breaches(rules: &[Rule], sources: &BTreeMap<String, Vec<(usize, String)>>) -> Vec<String> {
    let mut out = Vec::new();
    for rule in rules {
        for (file, lines) in sources {
            if in_room(file, &rule.rooms) {
                continue;
            }
            for (n, line) in lines {
                for t in rule.tokens.iter().filter(|t| occurs(line, t)) {
                    out.push(format!(
                        "{file}:{n}: `{t}` breaks rule `{}` (only in {}): {}",
                        rule.name,
                        rule.rooms.join(", "),
                        line.trim()
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_code_keeps_the_rules_of_the_house() {
    let found = breaches(&rules(), &sources());
    assert!(
        found.is_empty(),
        "{} breach(es) of docs/architecture.md's rules of the house:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn every_room_says_what_it_owns() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let silent: Vec<String> = files
        .iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(silent.is_empty(), "files without a //! comment: {silent:?}");
}

/// The checker itself: each rule catches a breach planted in a room it does not allow, and
/// ignores the same words inside longer identifiers.
#[test]
fn the_checker_catches_a_planted_breach_of_every_rule() {
    let rules = rules();
    for rule in &rules {
        let stranger = [
            "src/lab/plan.rs",
            "src/nat/predict.rs",
            "src/report/topology.rs",
            "src/cli/check.rs",
        ]
        .into_iter()
        .find(|f| !in_room(f, &rule.rooms))
        .expect("a room the rule does not allow");
        let token = &rule.tokens[0];
        let planted = BTreeMap::from([(
            stranger.to_owned(),
            vec![(7, format!("    let x = {token}something;"))],
        )]);
        let found = breaches(&rules, &planted);
        assert!(
            found
                .iter()
                .any(|b| b.contains(&format!("rule `{}`", rule.name))),
            "rule `{}` missed `{token}` in {stranger}: {found:?}",
            rule.name
        );
    }
    assert!(!occurs("let my_unsafe_flag = 1;", "unsafe"));
    assert!(occurs("unsafe { x }", "unsafe"));
    assert!(!occurs("fn errln_free()", "errln!"));
}
