//! The user's own program as the plan holds it: `command = [...]` of a server or client, each
//! argument a template of text and `{placeholders}`, checked once at validation (an unknown or
//! misplaced placeholder is an error with its column) and expanded per process by the runner,
//! with the same values in `LAB_*` environment variables. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value a command can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// The client's target, `ip:port`.
    Target,
    TargetHost,
    TargetPort,
    /// This process's share of the container's connections.
    Connections,
    /// 0-based index of the process among its container's (or server's) copies.
    Process,
    /// How many copies run beside it.
    Processes,
    /// The client's container.
    Container,
    /// The node the process runs in: the container for a client, the host for a server.
    Node,
    /// The lab's name.
    Lab,
    /// The server's port.
    Port,
}

/// Who runs a command: which placeholders mean something there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

impl Var {
    pub const ALL: [Var; 10] = [
        Var::Target,
        Var::TargetHost,
        Var::TargetPort,
        Var::Connections,
        Var::Process,
        Var::Processes,
        Var::Container,
        Var::Node,
        Var::Lab,
        Var::Port,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Var::Target => "target",
            Var::TargetHost => "target_host",
            Var::TargetPort => "target_port",
            Var::Connections => "connections",
            Var::Process => "process",
            Var::Processes => "processes",
            Var::Container => "container",
            Var::Node => "node",
            Var::Lab => "lab",
            Var::Port => "port",
        }
    }

    /// The environment variable with the same value.
    pub fn env(self) -> String {
        format!("LAB_{}", self.name().to_ascii_uppercase())
    }

    pub fn known_to(self, role: Role) -> bool {
        match self {
            Var::Target | Var::TargetHost | Var::TargetPort | Var::Connections | Var::Container => {
                role == Role::Client
            }
            Var::Port => role == Role::Server,
            Var::Process | Var::Processes | Var::Node | Var::Lab => true,
        }
    }

    pub fn for_role(role: Role) -> impl Iterator<Item = Var> {
        Var::ALL.into_iter().filter(move |v| v.known_to(role))
    }
}

/// One piece of an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

/// One argument: text with placeholders. `{{` and `}}` are literal braces. Serialized as
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Template {
    /// Back from a record: valid for one role or the other (validation chose which).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text, Role::Client)
            .or_else(|_| Template::parse(&text, Role::Server))
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Why an argument is not a valid template, with the byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: usize,
    pub message: String,
    pub help: String,
}

impl Template {
    /// Parses `text` as an argument of a `role`'s command.
    pub fn parse(text: &str, role: Role) -> Result<Self, TemplateError> {
        let known = || {
            Var::for_role(role)
                .map(|v| format!("{{{}}}", v.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let who = match role {
            Role::Server => "a server",
            Role::Client => "a client",
        };
        let mut pieces = Vec::new();
        let mut text_piece = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|p| p.1) == Some('{') => {
                    rest.next();
                    text_piece.push('{');
                }
                '}' if rest.peek().map(|p| p.1) == Some('}') => {
                    rest.next();
                    text_piece.push('}');
                }
                '{' => {
                    let Some(end) = text[i..].find('}').map(|e| i + e) else {
                        return Err(TemplateError {
                            at: i,
                            message: "`{` opens a placeholder that is never closed".into(),
                            help: format!(
                                "write `{{{{` for a literal brace; placeholders: {}",
                                known()
                            ),
                        });
                    };
                    let name = &text[i + 1..end];
                    let var = Var::ALL.into_iter().find(|v| v.name() == name);
                    match var {
                        Some(v) if v.known_to(role) => {
                            if !text_piece.is_empty() {
                                pieces.push(Piece::Text(std::mem::take(&mut text_piece)));
                            }
                            pieces.push(Piece::Var(v));
                        }
                        Some(_) => {
                            return Err(TemplateError {
                                at: i,
                                message: format!("`{{{name}}}` has no value for {who}"),
                                help: format!("{who}'s command knows {}", known()),
                            });
                        }
                        None => {
                            let names: Vec<&str> = Var::for_role(role).map(Var::name).collect();
                            let guess = crate::lab::diag::did_you_mean(name, names)
                                .map(|g| format!("did you mean {{{g}}}? "))
                                .unwrap_or_default();
                            return Err(TemplateError {
                                at: i,
                                message: format!("unknown placeholder `{{{name}}}`"),
                                help: format!("{guess}{who}'s command knows {}", known()),
                            });
                        }
                    }
                    while rest.peek().is_some_and(|&(j, _)| j <= end) {
                        rest.next();
                    }
                }
                '}' => {
                    return Err(TemplateError {
                        at: i,
                        message: "`}` closes no placeholder".into(),
                        help: "write `}}` for a literal brace".into(),
                    });
                }
                c => text_piece.push(c),
            }
        }
        if !text_piece.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(text_piece));
        }
        Ok(Template(pieces))
    }

    /// The argument with each placeholder replaced by `value(var)`.
    pub fn expand(&self, value: &impl Fn(Var) -> String) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Var(v) => value(*v),
            })
            .collect()
    }

    /// The literal text, when the argument has no placeholder.
    pub fn literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Template {
    /// As written, with literal braces doubled again.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Piece::Text(t) => f.write_str(&t.replace('{', "{{").replace('}', "}}"))?,
                Piece::Var(v) => write!(f, "{{{}}}", v.name())?,
            }
        }
        Ok(())
    }
}

/// A program and its arguments; the first is the executable (a path, or a name looked up in
/// `PATH` inside the node). Serialized as the list of arguments as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Command {
    /// Non-empty.
    pub argv: Vec<Template>,
}

impl Command {
    /// The argument vector for one process.
    pub fn expand(&self, value: &impl Fn(Var) -> String) -> Vec<String> {
        self.argv.iter().map(|a| a.expand(value)).collect()
    }

    /// The `LAB_*` environment of one process of `role`.
    pub fn env(role: Role, value: &impl Fn(Var) -> String) -> Vec<(String, String)> {
        Var::for_role(role).map(|v| (v.env(), value(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: Var) -> String {
        match v {
            Var::Target => "192.168.49.5:9000".into(),
            Var::TargetHost => "192.168.49.5".into(),
            Var::TargetPort => "9000".into(),
            Var::Connections => "12500".into(),
            Var::Process => "1".into(),
            Var::Processes => "2".into(),
            Var::Container => "c1".into(),
            Var::Node => "c1".into(),
            Var::Lab => "t".into(),
            Var::Port => "9000".into(),
        }
    }

    #[test]
    fn expands_placeholders_and_literal_braces() {
        let t = Template::parse("-rip={target_host}:{target_port}/{{x}}", Role::Client).unwrap();
        assert_eq!(t.expand(&values), "-rip=192.168.49.5:9000/{x}");
        assert_eq!(t.to_string(), "-rip={target_host}:{target_port}/{{x}}");
        let s = Template::parse("0.0.0.0:{port}", Role::Server).unwrap();
        assert_eq!(s.expand(&values), "0.0.0.0:9000");
        assert_eq!(
            Template::parse("-n", Role::Client).unwrap().literal(),
            Some("-n")
        );
        assert_eq!(
            Template::parse("", Role::Client).unwrap().literal(),
            Some("")
        );
        assert_eq!(s.literal(), None);
    }

    #[test]
    fn errors_say_where_and_what_is_known() {
        let e = Template::parse("-n {conections}", Role::Client).unwrap_err();
        assert_eq!(e.at, 3);
        assert_eq!(e.message, "unknown placeholder `{conections}`");
        assert!(
            e.help.starts_with("did you mean {connections}? "),
            "{}",
            e.help
        );
        let e = Template::parse("{port}", Role::Client).unwrap_err();
        assert_eq!(e.message, "`{port}` has no value for a client");
        let e = Template::parse("x{target", Role::Client).unwrap_err();
        assert_eq!(e.at, 1);
        let e = Template::parse("a}b", Role::Server).unwrap_err();
        assert_eq!(e.at, 1);
        assert!(Template::parse("{target}", Role::Server).is_err());
    }

    #[test]
    fn env_names_each_value_of_the_role() {
        let env = Command::env(Role::Server, &values);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "LAB_PROCESS",
                "LAB_PROCESSES",
                "LAB_NODE",
                "LAB_LAB",
                "LAB_PORT"
            ]
        );
        let env = Command::env(Role::Client, &values);
        assert!(env.contains(&("LAB_TARGET".into(), "192.168.49.5:9000".into())));
        assert!(env.contains(&("LAB_CONNECTIONS".into(), "12500".into())));
    }
}
