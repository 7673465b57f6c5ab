//! Outputs parsed, not grepped: `lab graph` in every format for every lab (and for a lab whose
//! names are Mermaid and DOT keywords), read back by small parsers and accounted node by node
//! and edge by edge against the plan `lab check --json` prints; the DOT laid out by Graphviz and
//! its SVG read as XML; and the completion scripts loaded and run by the shells they are for.
//!
//! No root needed: nothing here builds a lab.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory as _;
use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// What a graph output says, whatever its syntax.

/// A graph as read back from Mermaid or DOT.
#[derive(Debug, Default, Clone)]
struct Drawn {
    /// (id, label lines), in declaration order.
    nodes: Vec<(String, Vec<String>)>,
    /// (from, to, label), in order.
    edges: Vec<(String, String, String)>,
}

impl Drawn {
    fn declare(&mut self, id: &str, lines: Vec<String>) -> Result<(), String> {
        if self.nodes.iter().any(|(i, _)| i == id) {
            return Err(format!("node `{id}` is declared twice"));
        }
        self.nodes.push((id.to_owned(), lines));
        Ok(())
    }

    fn lines(&self, id: &str) -> &[String] {
        self.nodes
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default()
    }

    /// The nodes an edge joins to `id`.
    fn neighbours(&self, id: &str) -> Vec<&str> {
        self.edges
            .iter()
            .filter_map(|(a, b, _)| {
                if a == id {
                    Some(b.as_str())
                } else if b == id {
                    Some(a.as_str())
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Every edge joins two declared nodes (no dangling end, which Mermaid and Graphviz would
/// silently draw as an unlabelled node of its own), no node is joined to itself, no two edges
/// join the same pair.
fn well_formed(g: &Drawn) -> Result<(), String> {
    let ids: BTreeSet<&str> = g.nodes.iter().map(|(i, _)| i.as_str()).collect();
    let mut pairs = BTreeSet::new();
    for (a, b, _) in &g.edges {
        for end in [a, b] {
            if !ids.contains(end.as_str()) {
                return Err(format!(
                    "dangling edge {a} -- {b}: `{end}` is not a declared node"
                ));
            }
        }
        if a == b {
            return Err(format!("edge {a} -- {b} joins a node to itself"));
        }
        if !pairs.insert((a.min(b), a.max(b))) {
            return Err(format!("two edges join {a} and {b}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the plan says should be drawn.

/// A thing of the plan that the graph draws as a node (indexes into the plan's arrays; a
/// bridge is that of host i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Entity {
    Lan(usize),
    Host(usize),
    /// Host index, network index (0: the default bridge, then the user-defined networks).
    Bridge(usize, usize),
    Container(usize),
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("plan has no array `{key}`: {v}"))
}

fn st<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

/// A host's Docker networks in the plan's JSON: the default bridge, then the user-defined ones.
fn docker_networks(h: &Value) -> Vec<&Value> {
    let d = &h["docker"];
    if !d.is_object() {
        return Vec::new();
    }
    let mut nets = vec![&d["default_bridge"]];
    nets.extend(arr(d, "networks"));
    nets
}

fn idx(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("no index `{key}` in {v}"))
}

/// One node the plan calls for: its first label line (which names it), the lines that must
/// follow, and the name the SVG must show.
struct Want {
    what: String,
    heading: String,
    /// The lines after the heading, exactly; for a bridge only a prefix of its NAT line.
    rest: Vec<String>,
    name: String,
}

/// The nodes the plan calls for, as `lab graph` draws them (src/report/graph.rs): a LAN is
/// `LAN <name>` / its subnet; a host is `host <name>` / its addresses / a `server <name> :<port>`
/// line per server on it; a docker bridge is `<bridge> <gateway>/<len>` / `nat <kind> ...`; a
/// container is `<name>` / its address.
fn wanted(plan: &Value) -> BTreeMap<Entity, Want> {
    let mut w = BTreeMap::new();
    for (i, lan) in arr(plan, "lans").iter().enumerate() {
        w.insert(
            Entity::Lan(i),
            Want {
                what: format!("LAN {}", st(lan, "name")),
                heading: format!("LAN {}", st(lan, "name")),
                rest: vec![st(lan, "subnet").to_owned()],
                name: st(lan, "name").to_owned(),
            },
        );
    }
    let servers = arr(plan, "servers");
    for (i, h) in arr(plan, "hosts").iter().enumerate() {
        let addrs: Vec<&str> = arr(h, "addresses")
            .iter()
            .map(|a| a.as_str().expect("address"))
            .collect();
        let mut rest = vec![addrs.join(", ")];
        rest.extend(
            servers
                .iter()
                .filter(|s| idx(s, "host") == i)
                .map(|s| format!("server {} :{}", st(s, "name"), s["port"])),
        );
        w.insert(
            Entity::Host(i),
            Want {
                what: format!("host {}", st(h, "name")),
                heading: format!("host {}", st(h, "name")),
                rest,
                name: st(h, "name").to_owned(),
            },
        );
        for (n, d) in docker_networks(h).into_iter().enumerate() {
            let len = st(d, "subnet").rsplit_once('/').expect("subnet/len").1;
            let kind = st(&d["nat"], "kind");
            let nat = match kind {
                "masquerade" => format!("nat masquerade to {}", addrs[0]),
                // A cloud's NAT is drawn by its profile's name.
                "cloud" => format!("nat {}", st(&d["nat"], "profile")),
                k => format!("nat {k}"),
            };
            let mut rest = Vec::new();
            if n > 0 {
                rest.push(format!("network {}", st(d, "name")));
            }
            rest.push(nat);
            w.insert(
                Entity::Bridge(i, n),
                Want {
                    what: format!(
                        "docker bridge {} of host {}",
                        st(d, "bridge"),
                        st(h, "name")
                    ),
                    heading: format!("{} {}/{len}", st(d, "bridge"), st(d, "gateway")),
                    rest,
                    name: st(d, "bridge").to_owned(),
                },
            );
        }
    }
    for (i, c) in arr(plan, "containers").iter().enumerate() {
        w.insert(
            Entity::Container(i),
            Want {
                what: format!("container {}", st(c, "name")),
                heading: st(c, "name").to_owned(),
                rest: vec![st(c, "address").to_owned()],
                name: st(c, "name").to_owned(),
            },
        );
    }
    w
}

/// The edges the plan calls for, each with its label: a host to its LAN (labelled with the
/// host's NIC), a host's bridge to the host (no label), a container to its host's bridge
/// (labelled with its veth).
fn wanted_edges(plan: &Value) -> BTreeMap<(Entity, Entity), String> {
    let mut e = BTreeMap::new();
    for (i, h) in arr(plan, "hosts").iter().enumerate() {
        e.insert(
            (Entity::Lan(idx(h, "lan")), Entity::Host(i)),
            st(h, "nic").to_owned(),
        );
        for n in 0..docker_networks(h).len() {
            e.insert((Entity::Host(i), Entity::Bridge(i, n)), String::new());
        }
    }
    for (i, c) in arr(plan, "containers").iter().enumerate() {
        e.insert(
            (
                Entity::Bridge(idx(c, "host"), idx(c, "network")),
                Entity::Container(i),
            ),
            st(c, "veth").to_owned(),
        );
    }
    e
}

/// Accounts the drawn graph against the plan: exactly one node per LAN, host, docker bridge
/// and container, each labelled as it should be, no other node, and exactly the edges of
/// [`wanted_edges`]. Returns which node draws which entity.
fn account(plan: &Value, g: &Drawn) -> Result<BTreeMap<Entity, String>, String> {
    well_formed(g)?;
    let want = wanted(plan);
    let with_heading = |heading: &str| -> Vec<&str> {
        g.nodes
            .iter()
            .filter(|(_, l)| l.first().is_some_and(|f| f == heading))
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let mut drawn: BTreeMap<Entity, String> = BTreeMap::new();
    // LANs, hosts and containers have unique names; a bridge name (docker0) may repeat on
    // every host, so a bridge is the node of its heading that is joined to its host.
    for (e, w) in want
        .iter()
        .filter(|(e, _)| !matches!(e, Entity::Bridge(..)))
    {
        let id = match with_heading(&w.heading)[..] {
            [id] => id.to_owned(),
            [] => return Err(format!("no node draws {} (`{}`)", w.what, w.heading)),
            ref ids => return Err(format!("{ids:?} all draw {} (`{}`)", w.what, w.heading)),
        };
        drawn.insert(*e, id);
    }
    for (e, w) in want.iter() {
        let Entity::Bridge(h, _) = *e else { continue };
        let host = &drawn[&Entity::Host(h)];
        let candidates: Vec<&str> = g
            .neighbours(host)
            .into_iter()
            .filter(|n| g.lines(n).first() == Some(&w.heading))
            .collect();
        let id = match candidates[..] {
            [id] => id.to_owned(),
            [] => {
                return Err(format!(
                    "no node `{}` joined to {host} draws {}",
                    w.heading, w.what
                ));
            }
            ref ids => return Err(format!("{ids:?} all draw {}", w.what)),
        };
        drawn.insert(*e, id);
    }
    let mut owner: BTreeMap<&str, Entity> = BTreeMap::new();
    for (e, id) in &drawn {
        if let Some(other) = owner.insert(id, *e) {
            return Err(format!(
                "node {id} draws both {} and {}",
                want[&other].what, want[e].what
            ));
        }
    }
    for (id, lines) in &g.nodes {
        if !owner.contains_key(id.as_str()) {
            return Err(format!(
                "node {id} {lines:?} draws nothing of the plan ({} nodes wanted)",
                want.len()
            ));
        }
    }
    for (e, w) in &want {
        let id = &drawn[e];
        let lines = &g.lines(id)[1..];
        let ok = match e {
            // The NAT line, the last, may say more than the plan's words (the pool, ports).
            Entity::Bridge(..) => {
                let (nat, before) = w.rest.split_last().expect("a NAT line");
                lines.len() == w.rest.len()
                    && lines[..before.len()] == *before
                    && lines[before.len()].starts_with(nat.as_str())
            }
            _ => lines == w.rest.as_slice(),
        };
        if !ok {
            return Err(format!(
                "node {id} draws {} as {:?}; wanted {:?} then {:?}",
                w.what,
                g.lines(id),
                w.heading,
                w.rest
            ));
        }
    }
    let key = |a: Entity, b: Entity| (a.min(b), a.max(b));
    let got: BTreeMap<(Entity, Entity), String> = g
        .edges
        .iter()
        .map(|(a, b, l)| (key(owner[a.as_str()], owner[b.as_str()]), l.clone()))
        .collect();
    let expected = wanted_edges(plan);
    let show = |(a, b): &(Entity, Entity)| format!("{} -- {}", want[a].what, want[b].what);
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !got.contains_key(k))
        .map(show)
        .collect();
    let extra: Vec<String> = got
        .keys()
        .filter(|k| !expected.contains_key(k))
        .map(show)
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!(
            "edges missing: {missing:?}; edges not in the plan: {extra:?}"
        ));
    }
    for (k, label) in &expected {
        if &got[k] != label {
            return Err(format!(
                "edge {} is labelled {:?}, wanted {label:?}",
                show(k),
                got[k]
            ));
        }
    }
    Ok(drawn)
}

// ---------------------------------------------------------------------------------------------
// Mermaid, read back.

/// Words a Mermaid flowchart reads as keywords where a node id stands: an id that is one of
/// them misparses (`end` closes a subgraph, `style` starts a style statement, ...).
const MERMAID_KEYWORDS: &[&str] = &[
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "style",
    "linkStyle",
    "classDef",
    "class",
    "click",
    "call",
    "href",
    "callback",
    "direction",
    "default",
    "interpolate",
    "accTitle",
    "accDescr",
];

/// Flowchart node shapes, (opener, closer), longest openers first.
const MERMAID_SHAPES: &[(&str, &str)] = &[
    ("(((", ")))"),
    ("((", "))"),
    ("([", "])"),
    ("[[", "]]"),
    ("[(", ")]"),
    ("[/", "/]"),
    ("[/", "\\]"),
    ("[\\", "\\]"),
    ("[\\", "/]"),
    ("{{", "}}"),
    ("[", "]"),
    ("(", ")"),
    ("{", "}"),
    (">", "]"),
];

/// Flowchart links, longest first.
const MERMAID_LINKS: &[&str] = &["-.->", "-.-", "-->", "---", "==>", "==="];

/// Parses a Mermaid flowchart of node declarations (`id<shape>"label"<shape>`) and links
/// (`a --- b`, `a ---|label| b`, chained), one statement a line. Labels must be quoted (an
/// unquoted label misreads keywords and punctuation) and contain no raw `"`; `<br/>` splits
/// a label into lines. Node ids must be plain words that are no Mermaid keyword.
fn parse_mermaid(text: &str) -> Result<Drawn, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with("%%")
    });
    let (_, header) = lines.next().ok_or("no output")?;
    let words: Vec<&str> = header.split_whitespace().collect();
    if !matches!(
        words[..],
        ["graph" | "flowchart", "TB" | "TD" | "BT" | "RL" | "LR"]
    ) {
        return Err(format!(
            "`{header}` is not a flowchart header like `graph LR`"
        ));
    }
    let mut g = Drawn::default();
    for (n, line) in lines {
        let stmt = line.trim();
        let stmt = stmt.strip_suffix(';').unwrap_or(stmt);
        mermaid_statement(stmt, &mut g).map_err(|e| format!("line {}: {e}: `{line}`", n + 1))?;
    }
    Ok(g)
}

fn mermaid_statement(stmt: &str, g: &mut Drawn) -> Result<(), String> {
    let mut rest = stmt;
    let (mut prev, declared) = mermaid_node(&mut rest, g)?;
    let mut linked = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let link = MERMAID_LINKS
            .iter()
            .find(|l| rest.starts_with(**l))
            .ok_or_else(|| format!("expected a link after `{prev}`, found `{rest}`"))?;
        rest = &rest[link.len()..];
        let mut label = String::new();
        if let Some(r) = rest.strip_prefix('|') {
            let end = r.find('|').ok_or("a link label with no closing `|`")?;
            label = r[..end].to_owned();
            if let Some(c) = label.chars().find(|c| "\"[](){}<>#;".contains(*c)) {
                return Err(format!("link label `{label}` holds `{c}`, unquoted"));
            }
            rest = &r[end + 1..];
        }
        rest = rest.trim_start();
        let (next, _) = mermaid_node(&mut rest, g)?;
        g.edges.push((prev, next.clone(), label));
        prev = next;
        linked = true;
    }
    if !declared && !linked {
        // A bare id: Mermaid draws a node labelled with it.
        g.declare(&prev, vec![prev.clone()])?;
    }
    Ok(())
}

/// Reads a node id and, if a shape follows, its quoted label (declaring it). Returns the id
/// and whether it was declared here.
fn mermaid_node(rest: &mut &str, g: &mut Drawn) -> Result<(String, bool), String> {
    let s = *rest;
    let len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let id = &s[..len];
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("expected a node id, found `{s}`"));
    }
    if MERMAID_KEYWORDS.contains(&id) {
        return Err(format!("node id `{id}` is a Mermaid keyword"));
    }
    let mut r = &s[len..];
    let Some((open, _)) = MERMAID_SHAPES.iter().find(|(o, _)| r.starts_with(o)) else {
        *rest = r;
        return Ok((id.to_owned(), false));
    };
    r = &r[open.len()..];
    let q = r
        .strip_prefix('"')
        .ok_or_else(|| format!("the label of `{id}` is not quoted: `{r}`"))?;
    let end = q
        .find('"')
        .ok_or_else(|| format!("the label of `{id}` has no closing quote"))?;
    let label = &q[..end];
    r = &q[end + 1..];
    let close = MERMAID_SHAPES
        .iter()
        .filter(|(o, _)| o == open)
        .map(|(_, c)| *c)
        .find(|c| r.starts_with(c))
        .ok_or_else(|| {
            format!(
                "the label of `{id}` is not followed by the closer of `{open}` but by `{r}` \
                 (a raw `\"` inside the label?)"
            )
        })?;
    *rest = &r[close.len()..];
    let lines = label.split("<br/>").map(str::to_owned).collect();
    g.declare(id, lines)?;
    Ok((id.to_owned(), true))
}

// ---------------------------------------------------------------------------------------------
// DOT, read back.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier, a numeral or a quoted string (with `\"` unescaped).
    Id(String),
    /// `{ } [ ] = ; , -- ->`
    P(&'static str),
}

fn dot_tokens(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' if text[..i].ends_with('\n') || i == 0 => {
                while chars.next_if(|(_, c)| *c != '\n').is_some() {}
            }
            '/' if text[i..].starts_with("//") => {
                while chars.next_if(|(_, c)| *c != '\n').is_some() {}
            }
            '/' if text[i..].starts_with("/*") => {
                let end = text[i + 2..].find("*/").ok_or("unterminated comment")?;
                while chars.next_if(|(j, _)| *j < i + 2 + end + 2).is_some() {}
            }
            '{' => toks.push(Tok::P("{")),
            '}' => toks.push(Tok::P("}")),
            '[' => toks.push(Tok::P("[")),
            ']' => toks.push(Tok::P("]")),
            '=' => toks.push(Tok::P("=")),
            ';' => toks.push(Tok::P(";")),
            ',' => toks.push(Tok::P(",")),
            '-' if text[i..].starts_with("--") => {
                chars.next();
                toks.push(Tok::P("--"));
            }
            '-' if text[i..].starts_with("->") => {
                chars.next();
                toks.push(Tok::P("->"));
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string from byte {i}")),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '"')) => s.push('"'),
                            Some((_, '\n')) => {}
                            Some((_, c)) => {
                                s.push('\\');
                                s.push(c);
                            }
                            None => return Err(format!("unterminated string from byte {i}")),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
                toks.push(Tok::Id(s));
            }
            '<' => return Err("HTML labels are not read by this parser".into()),
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut s = String::from(c);
                while let Some((_, c)) =
                    chars.next_if(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    s.push(c);
                }
                toks.push(Tok::Id(s));
            }
            c => return Err(format!("unexpected `{c}` at byte {i}")),
        }
    }
    Ok(toks)
}

/// Parses an undirected DOT graph of attribute, node and edge statements (no subgraphs, no
/// ports: `lab graph` writes none). A node's label is split into lines at `\n`, `\l`, `\r`.
fn parse_dot(text: &str) -> Result<Drawn, String> {
    let toks = dot_tokens(text)?;
    let mut p = DotParser { toks: &toks, at: 0 };
    if p.keyword("strict") {
        p.at += 1;
    }
    if !p.keyword("graph") {
        return Err(format!(
            "expected `graph` (undirected) first, found {:?}",
            p.peek()
        ));
    }
    p.at += 1;
    if let Some(Tok::Id(_)) = p.peek() {
        p.at += 1;
    }
    p.expect("{")?;
    let mut g = Drawn::default();
    loop {
        match p.peek() {
            None => return Err("the graph ends before its closing `}`".into()),
            Some(Tok::P("}")) => {
                p.at += 1;
                break;
            }
            Some(Tok::P(";")) => p.at += 1,
            Some(_) => p.statement(&mut g)?,
        }
    }
    if let Some(t) = p.peek() {
        return Err(format!("{t:?} after the graph's closing `}}`"));
    }
    Ok(g)
}

struct DotParser<'a> {
    toks: &'a [Tok],
    at: usize,
}

impl DotParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Id(s)) if s.eq_ignore_ascii_case(k))
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        match self.peek() {
            Some(Tok::P(q)) if *q == p => {
                self.at += 1;
                Ok(())
            }
            t => Err(format!("expected `{p}`, found {t:?}")),
        }
    }

    fn id(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Id(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            t => Err(format!("expected an id, found {t:?}")),
        }
    }

    /// `[a=b, c=d] [e=f]...`, possibly none.
    fn attrs(&mut self) -> Result<BTreeMap<String, String>, String> {
        let mut m = BTreeMap::new();
        while let Some(Tok::P("[")) = self.peek() {
            self.at += 1;
            loop {
                if let Some(Tok::P("]")) = self.peek() {
                    self.at += 1;
                    break;
                }
                let k = self.id()?;
                self.expect("=")?;
                let v = self.id()?;
                m.insert(k, v);
                if let Some(Tok::P("," | ";")) = self.peek() {
                    self.at += 1;
                }
            }
        }
        Ok(m)
    }

    fn statement(&mut self, g: &mut Drawn) -> Result<(), String> {
        if self.keyword("subgraph") || matches!(self.peek(), Some(Tok::P("{"))) {
            return Err("subgraphs are not read by this parser".into());
        }
        if self.keyword("graph") || self.keyword("node") || self.keyword("edge") {
            self.at += 1;
            if !matches!(self.peek(), Some(Tok::P("["))) {
                return Err("an attribute statement without `[`".into());
            }
            self.attrs()?;
            return Ok(());
        }
        let first = self.id()?;
        if let Some(Tok::P("=")) = self.peek() {
            self.at += 1;
            self.id()?;
            return Ok(());
        }
        let mut chain = vec![first];
        loop {
            match self.peek() {
                Some(Tok::P("--")) => {
                    self.at += 1;
                    chain.push(self.id()?);
                }
                Some(Tok::P("->")) => return Err("`->` in an undirected graph".into()),
                _ => break,
            }
        }
        let attrs = self.attrs()?;
        if let Some(Tok::P(";")) = self.peek() {
            self.at += 1;
        }
        let label = attrs.get("label").cloned();
        if chain.len() == 1 {
            let label = label.unwrap_or_else(|| chain[0].clone());
            let mut lines: Vec<String> = label
                .replace("\\l", "\\n")
                .replace("\\r", "\\n")
                .split("\\n")
                .map(str::to_owned)
                .collect();
            if lines.len() > 1 && lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            g.declare(&chain[0], lines)
        } else {
            for w in chain.windows(2) {
                g.edges.push((
                    w[0].clone(),
                    w[1].clone(),
                    label.clone().unwrap_or_default(),
                ));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SVG, read back.

/// What Graphviz drew: node titles (its DOT ids) with their text lines, edge titles
/// (`a--b`) with theirs. Fails unless `svg` is well-formed XML with an SVG root.
type SvgDrawing = (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>);

fn read_svg(svg: &str) -> Result<SvgDrawing, String> {
    let opt = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(svg, opt)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "svg"
        || root.tag_name().namespace() != Some("http://www.w3.org/2000/svg")
    {
        return Err(format!(
            "the root element is {:?}, not svg",
            root.tag_name()
        ));
    }
    let text_of = |n: roxmltree::Node| -> String {
        n.descendants()
            .filter(|d| d.is_text())
            .filter_map(|d| d.text())
            .collect()
    };
    let mut nodes = BTreeMap::new();
    let mut edges = BTreeMap::new();
    for g in root.descendants().filter(|n| n.has_tag_name("g")) {
        let map = match g.attribute("class") {
            Some("node") => &mut nodes,
            Some("edge") => &mut edges,
            _ => continue,
        };
        let title = g
            .children()
            .find(|c| c.has_tag_name("title"))
            .map(text_of)
            .ok_or_else(|| format!("a <g class={:?}> without <title>", g.attribute("class")))?;
        let texts: Vec<String> = g
            .descendants()
            .filter(|d| d.has_tag_name("text"))
            .map(text_of)
            .collect();
        if map.insert(title.clone(), texts).is_some() {
            return Err(format!("two SVG groups titled {title:?}"));
        }
    }
    Ok((nodes, edges))
}

/// The SVG draws exactly the DOT's nodes (each with its label's lines) and edges (each with
/// its label), nothing else.
fn svg_matches_dot(svg: &SvgDrawing, dot: &Drawn) -> Result<(), String> {
    let (nodes, edges) = svg;
    let want: BTreeMap<String, Vec<String>> = dot.nodes.iter().cloned().collect();
    if nodes.keys().ne(want.keys()) {
        return Err(format!(
            "the SVG's nodes are {:?}, the DOT's {:?}",
            nodes.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        ));
    }
    for (id, lines) in &want {
        if &nodes[id] != lines {
            return Err(format!(
                "the SVG draws {id} as {:?}, the DOT labels it {lines:?}",
                nodes[id]
            ));
        }
    }
    let want: BTreeMap<String, Vec<String>> = dot
        .edges
        .iter()
        .map(|(a, b, l)| {
            let texts = if l.is_empty() {
                vec![]
            } else {
                vec![l.clone()]
            };
            (format!("{a}--{b}"), texts)
        })
        .collect();
    if edges != &want {
        return Err(format!("the SVG's edges are {edges:?}, the DOT's {want:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running things.

/// A lab whose names are Mermaid and DOT keywords, or hold `-`, `_`, `.` and digits (all a name
/// may hold), with two LANs, a host with two servers, a host with docker but NAT off, and a
/// bridge named like a container.
const AWKWARD: &str = r#"
name = "end"

[lans.subgraph]
subnet = "10.1.0.0/24"

[lans.graph]
subnet = "10.2.0.0/24"

[hosts.style]
lan = "subgraph"
addresses = ["10.1.0.2", "10.1.0.3"]

[hosts.style.docker]
bridge = "click"
subnet = "172.18.0.0/16"
nat = "masquerade"

[hosts."0-a_b.c"]
lan = "graph"
addresses = ["10.2.0.5"]

[hosts."0-a_b.c".docker]
bridge = "end"
nat = "none"

[hosts.classDef]
lan = "subgraph"
addresses = ["10.1.0.9"]

[containers.end]
host = "style"

[containers."x--y"]
host = "style"
replicas = 2

[containers.o_1]
host = "0-a_b.c"

[containers.digraph]
host = "0-a_b.c"

[servers.class]
host = "classDef"
port = 80

[servers.linkStyle]
host = "classDef"
port = 443

[servers.default]
host = "0-a_b.c"
port = 8080
"#;

/// Every lab in labs/ and the awkward one (kept alive by the returned [`TempLab`]).
fn every_lab(tag: &str) -> (TempLab, Vec<PathBuf>) {
    let awkward = temp_lab(tag, AWKWARD);
    let mut files = lab_files();
    assert!(files.len() >= 9, "labs/ holds only {files:?}");
    files.push(awkward.file.clone());
    (awkward, files)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `lab check FILE --json`'s plan (the report validated against its schema).
fn plan_of(file: &Path) -> Value {
    let out = lab(&["check", path(file), "--json"]);
    let doc = json_of(schema::Kind::Check, &out);
    assert_eq!(
        doc["ok"],
        true,
        "{} is not valid:\n{}",
        file.display(),
        text(&out)
    );
    doc["plan"].clone()
}

/// `lab graph FILE ARGS...`, which must succeed with nothing on stderr.
fn graph(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["graph", path(file)];
    all.extend_from_slice(args);
    let out = lab(&all);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "lab {all:?}:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 graph")
}

/// Runs `program args` with `input` on its stdin (written from a thread, so a large output
/// cannot deadlock it).
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    out
}

/// True when `program` can be run (`program flag` exits 0).
fn installed(program: &str, flag: &str) -> bool {
    Command::new(program)
        .arg(flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_graphviz() -> bool {
    installed("dot", "-V")
}

// ---------------------------------------------------------------------------------------------
// lab graph.

/// `lab graph FILE` (Mermaid) for every lab: a flowchart header, then declarations and links
/// only, every label quoted without a raw quote, every link between declared nodes, and
/// exactly one node per LAN, host, docker bridge and container of the plan, labelled with its
/// name and addresses (servers on their host), joined host-LAN, bridge-host, container-bridge.
#[test]
fn mermaid_of_every_lab_draws_its_plan() {
    let (_keep, files) = every_lab("outmmd");
    for file in &files {
        let plan = plan_of(file);
        let m = graph(file, &[]);
        let g = parse_mermaid(&m)
            .unwrap_or_else(|e| panic!("{}: Mermaid does not parse: {e}\n{m}", file.display()));
        account(&plan, &g)
            .unwrap_or_else(|e| panic!("{}: Mermaid misdraws the plan: {e}\n{m}", file.display()));
        // The default is Mermaid, and so is --format mermaid.
        assert_eq!(graph(file, &["--format", "mermaid"]), m);
    }
}

/// `lab graph --format dot FILE` for every lab: an undirected DOT graph that the parser reads
/// back with the same node and edge accounting as the Mermaid.
#[test]
fn dot_of_every_lab_draws_its_plan() {
    let (_keep, files) = every_lab("outdot");
    for file in &files {
        let plan = plan_of(file);
        let d = graph(file, &["--format", "dot"]);
        let g = parse_dot(&d)
            .unwrap_or_else(|e| panic!("{}: DOT does not parse: {e}\n{d}", file.display()));
        account(&plan, &g)
            .unwrap_or_else(|e| panic!("{}: DOT misdraws the plan: {e}\n{d}", file.display()));
        let name = st(&plan, "name");
        assert!(
            d.starts_with(&format!("graph \"{name}\" {{\n")),
            "the graph is not named after the lab `{name}`:\n{d}"
        );
    }
}

/// For every lab, Graphviz lays out the DOT (`dot -Tsvg`) with exit 0 and not a warning; its
/// SVG is well-formed XML whose `<g class="node">` groups are exactly the DOT's nodes, titled
/// with their ids, showing their labels' lines (so each LAN, host, bridge and container of the
/// plan appears by name), and whose `<g class="edge">` groups are exactly the DOT's edges.
/// `lab graph --format svg` prints that same SVG.
#[test]
fn graphviz_lays_out_the_dot_of_every_lab() {
    let test = "graphviz_lays_out_the_dot_of_every_lab";
    if !has_graphviz() {
        skip(
            test,
            "Graphviz's `dot` is not installed (apt-get install graphviz)",
        );
        return;
    }
    let (_keep, files) = every_lab("outsvg");
    for file in &files {
        let plan = plan_of(file);
        let d = graph(file, &["--format", "dot"]);
        let out = pipe("dot", &["-Tsvg"], d.as_bytes());
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: dot -Tsvg:\n{}\n{d}",
            file.display(),
            text(&out)
        );
        let g = parse_dot(&d).expect("DOT parses (see dot_of_every_lab_draws_its_plan)");
        let drawn = account(&plan, &g).expect("DOT accounts (see dot_of_every_lab_draws_its_plan)");
        let svg = String::from_utf8(out.stdout).expect("utf-8 SVG");
        let read = read_svg(&svg).unwrap_or_else(|e| panic!("{}: {e}\n{svg}", file.display()));
        svg_matches_dot(&read, &g).unwrap_or_else(|e| panic!("{}: {e}\n{d}", file.display()));
        let want = wanted(&plan);
        for (e, id) in &drawn {
            let name = &want[e].name;
            assert!(
                read.0[id]
                    .iter()
                    .any(|t| t.split_whitespace().any(|w| w == name)),
                "{}: the SVG node of {} does not name it: {:?}",
                file.display(),
                want[e].what,
                read.0[id]
            );
        }
        let lab_svg = graph(file, &["--format", "svg"]);
        read_svg(&lab_svg).unwrap_or_else(|e| panic!("{}: --format svg: {e}", file.display()));
        assert!(
            lab_svg == svg,
            "{}: `lab graph --format svg` is not dot's layout of `--format dot`",
            file.display()
        );
    }
}

/// Without Graphviz, `--format svg` fails as unsupported (exit 3), saying how to get it, and
/// the other formats still work.
#[test]
fn svg_without_graphviz_says_how_to_get_it() {
    let empty = TempDir::new("outnodot");
    let file = lab_file("02-cross-host.toml");
    let run = |format: &str| {
        lab_command()
            .env("PATH", &*empty)
            .args(["graph", path(&file), "--format", format])
            .output()
            .expect("run lab")
    };
    let out = run("svg");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("apt-get install graphviz"),
        "{}",
        text(&out)
    );
    for format in ["mermaid", "dot"] {
        let out = run(format);
        assert!(out.status.success(), "--format {format}: {}", text(&out));
    }
}

/// When `dot` fails, `lab graph --format svg` fails (exit 4, nothing on stdout) and its error
/// says what dot said: dot's stderr is part of the message, not loose beside it.
#[test]
fn svg_when_dot_fails_says_what_dot_said() {
    let bin = TempDir::new("outfakedot");
    let fake = bin.join("dot");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile read -r _; do :; done\necho 'Error: <stdin>: syntax error in line 7' >&2\nexit 1\n",
    )
    .expect("write fake dot");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod fake dot");
    let file = lab_file("02-cross-host.toml");
    let out = lab_command()
        .env("PATH", &*bin)
        .args(["graph", path(&file), "--format", "svg"])
        .output()
        .expect("run lab");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("lab: error:"))
        .unwrap_or_else(|| panic!("no `lab: error:` line:\n{}", text(&out)));
    assert!(
        error.contains("syntax error in line 7"),
        "the error does not say what dot said (src/cli/graph.rs does not capture dot's \
         stderr): {error:?}\n{}",
        text(&out)
    );
}

/// `lab graph -o FILE` (and `--output`) writes exactly what stdout gets, for every format and
/// every lab, and prints nothing.
#[test]
fn graph_output_file_is_what_stdout_gets() {
    let (_keep, files) = every_lab("outo");
    let dir = TempDir::new("outofile");
    let mut formats = vec!["mermaid", "dot"];
    if has_graphviz() {
        formats.push("svg");
    } else {
        eprintln!("graph_output_file_is_what_stdout_gets: no Graphviz, --format svg left out");
    }
    for file in &files {
        for &format in &formats {
            for flag in ["-o", "--output"] {
                let target = dir.join(format!("graph.{format}"));
                let _ = std::fs::remove_file(&target);
                let out = lab(&["graph", path(file), "--format", format, flag, path(&target)]);
                assert!(
                    out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                    "{}: --format {format} {flag}:\n{}",
                    file.display(),
                    text(&out)
                );
                let written = std::fs::read_to_string(&target).expect("the -o file");
                assert_eq!(
                    written,
                    graph(file, &["--format", format]),
                    "{}: --format {format} {flag} wrote something else than stdout gets",
                    file.display()
                );
            }
        }
    }
}

/// The parsers and the accounting above catch what they are for: each of these broken graphs
/// (of 02-cross-host) is rejected, with the message that says why.
#[test]
fn the_graph_checks_reject_broken_graphs() {
    let file = lab_file("02-cross-host.toml");
    let plan = plan_of(&file);
    let m = graph(&file, &[]);
    let d = graph(&file, &["--format", "dot"]);
    let mermaid = |text: &str| parse_mermaid(text).and_then(|g| account(&plan, &g));
    let dot = |text: &str| parse_dot(text).and_then(|g| account(&plan, &g));
    assert!(mermaid(&m).is_ok() && dot(&d).is_ok());
    let rejects = |what: &str, r: Result<BTreeMap<Entity, String>, String>, says: &str| {
        let e = r.expect_err(what);
        eprintln!("{what}: rejected: {e}");
        assert!(
            e.contains(says),
            "{what}: the message {e:?} does not say {says:?}"
        );
    };
    let without = |text: &str, line: &str| text.replacen(&format!("{line}\n"), "", 1);
    let line = |text: &str, start: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
            .to_owned()
    };

    // Mermaid.
    rejects(
        "an edge dropped",
        mermaid(&without(&m, &line(&m, "  host1 ---"))),
        "edges missing",
    );
    rejects(
        "a bridge cut off its host",
        mermaid(&without(&m, &line(&m, "  br0 --- "))),
        "joined to host0",
    );
    rejects(
        "an edge added",
        mermaid(&format!("{m}  c0 --- host1\n")),
        "edges not in the plan",
    );
    rejects(
        "a dangling edge",
        mermaid(&format!("{m}  c0 --- br7\n")),
        "dangling edge",
    );
    rejects(
        "a container on the wrong bridge",
        mermaid(&{
            let l = line(&m, "  c2 ---");
            m.replace(&l, &l.replace(" br0", " host1"))
        }),
        "edges",
    );
    rejects(
        "a node dropped",
        mermaid(&without(
            &without(&m, &line(&m, "  c2[")),
            &line(&m, "  c2 ---"),
        )),
        "no node draws container c3",
    );
    rejects(
        "a node added",
        mermaid(&m.replacen("  c0", "  c9[\"c9\"]\n  c0", 1)),
        "draws nothing of the plan",
    );
    rejects(
        "a wrong address",
        mermaid(&m.replace("172.17.0.4", "172.17.0.9")),
        "draws container c3 as",
    );
    rejects(
        "a raw quote in a label",
        mermaid(&m.replace("host server-host", "host \"server\"-host")),
        "raw `\"`",
    );
    rejects(
        "an unquoted label",
        mermaid(&m.replace("[\"c1<br/>172.17.0.2\"]", "[c1<br/>172.17.0.2]")),
        "not quoted",
    );
    rejects(
        "a keyword as an id",
        mermaid(&m.replace("c0", "end")),
        "Mermaid keyword",
    );
    rejects(
        "a node declared twice",
        mermaid(&format!("{m}  c0[\"c1<br/>172.17.0.2\"]\n")),
        "declared twice",
    );
    rejects(
        "no header",
        mermaid(&m.replacen("graph LR\n", "", 1)),
        "header",
    );
    rejects(
        "a truncated line",
        mermaid(&m[..m.find("(\"LAN lan").expect("LAN") + 8]),
        "no closing quote",
    );

    // DOT.
    rejects(
        "an edge dropped",
        dot(&without(&d, &line(&d, "  host1 -- "))),
        "edges missing",
    );
    rejects(
        "a dangling edge",
        dot(&d.replace("-- br0", "-- br7")),
        "dangling edge",
    );
    rejects("truncated", dot(&d[..d.len() / 2]), "");
    rejects(
        "no closing brace",
        dot(d.trim_end().trim_end_matches('}')),
        "closing `}`",
    );
    rejects(
        "a directed edge",
        dot(&d.replace("host0 -- lan0", "host0 -> lan0")),
        "`->`",
    );
    rejects(
        "an unescaped quote",
        dot(&d.replace("host server-host", "host \"server\"-host")),
        "",
    );
    // An escaped quote is DOT's own: it parses, and stands in the label.
    let quoted = d.replace("host server-host", "host \\\"server\\\"-host");
    let g = parse_dot(&quoted).expect("escaped quotes parse");
    assert!(
        g.nodes.iter().any(|(_, l)| l[0] == "host \"server\"-host"),
        "{g:?}"
    );

    // SVG.
    if has_graphviz() {
        let out = pipe("dot", &["-Tsvg"], &d.as_bytes()[..d.len() / 2]);
        assert!(
            !out.status.success() && !out.stderr.is_empty(),
            "dot takes a truncated graph:\n{}",
            text(&out)
        );
        let g = parse_dot(&d).expect("DOT");
        let svg = String::from_utf8(pipe("dot", &["-Tsvg"], d.as_bytes()).stdout).expect("svg");
        let read = read_svg(&svg).expect("svg reads");
        svg_matches_dot(&read, &g).expect("svg matches");
        let mut fewer = g.clone();
        fewer.edges.pop();
        assert!(
            svg_matches_dot(&read, &fewer).is_err(),
            "an edge more in the SVG"
        );
        let mut renamed = g.clone();
        renamed.nodes[0].1[0] = "LAN other".into();
        assert!(svg_matches_dot(&read, &renamed).is_err(), "a label changed");
        let cut = &svg[..svg.len() - 20];
        assert!(read_svg(cut).is_err(), "a truncated SVG reads");
        assert!(read_svg("<html/>").is_err(), "a non-SVG root reads");
    }
}

// ---------------------------------------------------------------------------------------------
// lab completions.

/// The verbs `lab --help` lists (hidden ones left out), `help` included.
fn visible_subcommands() -> Vec<String> {
    let mut cmd = lab::cli::Cli::command();
    cmd.build();
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

fn hidden_subcommands() -> Vec<String> {
    let cmd = lab::cli::Cli::command();
    cmd.get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

fn script(shell: &str) -> String {
    let out = lab(&["completions", shell]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "lab completions {shell}:\n{}",
        text(&out)
    );
    let s = String::from_utf8(out.stdout).expect("utf-8 script");
    assert!(
        !s.trim().is_empty(),
        "lab completions {shell} printed nothing"
    );
    s
}

/// Loads `lab completions bash` into a fresh bash the way a user does
/// (`source <(lab completions bash)`), finds the function `complete -p lab` registered, and
/// calls it as bash does on TAB for the command line `words` (the last one is the word being
/// completed): COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT set, arguments the command, the
/// current word and the previous one. Returns COMPREPLY.
fn bash_complete(words: &[&str]) -> Vec<String> {
    const COMPLETE: &str = r#"
source <("$LAB" completions bash) || exit 90
spec=$(complete -p lab) || exit 91
[[ $spec =~ \ -F\ ([^ ]+)\ lab$ ]] || { echo "no -F FUNCTION in: $spec" >&2; exit 92; }
fn=${BASH_REMATCH[1]}
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", COMPLETE, "bash"])
        .args(words)
        .env("LAB", LAB)
        .output()
        .expect("run bash");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "completing {words:?}:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The bash script is valid bash (`bash -n`); sourced, it registers a completion function for
/// `lab` (`complete -p lab` names a defined function); and that function, called the way bash
/// calls it, completes `lab ch` to `check`, `lab ` to every verb, `lab run --` to every option
/// of `lab run` (--json, --out, --settle among them), and values of `--format` and of
/// `lab completions`.
#[test]
fn bash_completion_loads_and_completes() {
    let s = script("bash");
    let out = pipe("bash", &["-n"], s.as_bytes());
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "bash -n rejects the script:\n{}",
        text(&out)
    );

    let out = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            r#"source <("$LAB" completions bash) && complete -p lab"#,
        ])
        .env("LAB", LAB)
        .output()
        .expect("run bash");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    let spec = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let words: Vec<&str> = spec.split_whitespace().collect();
    assert!(
        words.first() == Some(&"complete") && words.last() == Some(&"lab"),
        "`complete -p lab` says {spec:?}"
    );
    let f = words
        .iter()
        .position(|w| *w == "-F")
        .and_then(|i| words.get(i + 1))
        .unwrap_or_else(|| panic!("no completion function (-F) registered: {spec:?}"));
    let out = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            r#"source <("$LAB" completions bash) && declare -F "$1""#,
            "bash",
            f,
        ])
        .env("LAB", LAB)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{f} is not a function: {}",
        text(&out)
    );

    let got = bash_complete(&["lab", "ch"]);
    assert!(
        got.contains(&"check".to_owned()),
        "lab ch<TAB> offers {got:?}"
    );
    assert!(
        got.iter().all(|w| w.starts_with("ch")),
        "lab ch<TAB> offers {got:?}"
    );

    let got = bash_complete(&["lab", ""]);
    for verb in visible_subcommands() {
        assert!(
            got.contains(&verb),
            "lab <TAB> does not offer {verb}: {got:?}"
        );
    }

    let got = bash_complete(&["lab", "run", "--"]);
    let mut cmd = lab::cli::Cli::command();
    cmd.build();
    let run = cmd.find_subcommand("run").expect("lab run");
    let mut options: Vec<String> = run
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    options.extend(["--json", "--out", "--settle"].map(str::to_owned));
    for o in &options {
        assert!(
            got.contains(o),
            "lab run --<TAB> does not offer {o}: {got:?}"
        );
    }
    assert!(
        got.iter().all(|w| w.starts_with("--")),
        "lab run --<TAB> offers {got:?}"
    );

    // Values, not options (which bash also offers there).
    let values = |words: &[&str]| -> BTreeSet<String> {
        bash_complete(words)
            .into_iter()
            .filter(|w| !w.starts_with('-'))
            .collect()
    };
    let got = values(&["lab", "graph", "--format", ""]);
    let formats: BTreeSet<String> = ["mermaid", "dot", "svg"].map(str::to_owned).into();
    assert_eq!(got, formats, "lab graph --format <TAB>");

    let got = values(&["lab", "completions", ""]);
    let shells: BTreeSet<String> = ["bash", "elvish", "fish", "powershell", "zsh"]
        .map(str::to_owned)
        .into();
    assert_eq!(got, shells, "lab completions <TAB>");
}

/// `lab <TAB>` and `lab help <TAB>` offer only the verbs `lab --help` shows: not the internal
/// `agent` (hidden from the help).
#[test]
fn bash_completion_offers_no_hidden_subcommand() {
    let hidden = hidden_subcommands();
    assert!(hidden.contains(&"agent".to_owned()), "{hidden:?}");
    for words in [&["lab", ""][..], &["lab", "help", ""]] {
        let got = bash_complete(words);
        let offered: Vec<&String> = got.iter().filter(|w| hidden.contains(w)).collect();
        assert!(
            offered.is_empty(),
            "{words:?}<TAB> offers the hidden {offered:?} (clap_complete does not leave hidden \
             subcommands out; src/cli/completions.rs must): {got:?}"
        );
    }
}

/// The zsh, fish, elvish and PowerShell scripts are non-empty and name every verb; zsh's and
/// fish's are also checked by the shell (`zsh -n`, `fish --no-execute`) where it is installed
/// (the suite does not need them).
#[test]
fn other_shells_get_scripts_that_name_every_verb() {
    let dir = TempDir::new("outshells");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let s = script(shell);
        let words: BTreeSet<&str> = s
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .collect();
        for verb in visible_subcommands() {
            assert!(
                words.contains(verb.as_str()),
                "the {shell} script lacks {verb}"
            );
        }
        let check = match shell {
            "zsh" => Some(("zsh", "-n")),
            "fish" => Some(("fish", "--no-execute")),
            _ => None,
        };
        let Some((program, flag)) = check else {
            continue;
        };
        if !installed(program, "--version") {
            eprintln!("{program} is not installed: its script's syntax left unchecked");
            continue;
        }
        let file = dir.join(format!("lab.{shell}"));
        std::fs::write(&file, &s).expect("write script");
        let out = Command::new(program)
            .arg(flag)
            .arg(&file)
            .output()
            .expect("run the shell");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{program} {flag} rejects the script:\n{}",
            text(&out)
        );
    }
}
