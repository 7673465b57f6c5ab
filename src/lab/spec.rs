//! The lab file as written (TOML), with the byte span of every key and value.
//!
//! This layer knows only the *shape* of a lab file: which keys each table may have, which are
//! required, and what TOML type each value must be. What values mean (addresses, references
//! between tables, limits) is [`validate`](super::validate)'s job.
//!
//! The tables are walked by hand from a `toml_edit::Document` rather than deserialized with
//! serde, because serde stops at the first problem and loses spans; here every problem becomes
//! a [`Diagnostic`] and the walk carries on, so a user sees all of them at once. A field that
//! was missing or of the wrong type is `None` (or left out of a list) and has already been
//! reported, so later stages skip it silently instead of piling up follow-on errors.

use std::ops::Range;

use toml_edit::{ArrayOfTables, Document, InlineTable, Item, Key, Table, TableLike, Value};

use super::diag::{Diagnostic, did_you_mean};

/// A byte range in the lab file.
pub type Span = Range<usize>;

/// A value and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// An array of strings: the array's span (for "is empty") and each element's (for "is wrong").
pub type StringList = Spanned<Vec<Spanned<String>>>;

/// One `[section.<name>]` table, e.g. `[hosts.client-host]`.
#[derive(Debug, Clone)]
pub struct Named<T> {
    /// The key naming the table (`client-host`), where name problems are reported.
    pub name: Spanned<String>,
    /// The whole table (its `[header]` for a standard table), where missing keys are reported.
    pub span: Span,
    pub body: T,
}

/// A whole lab file. Sections keep the order they are written in, which decides container
/// order and automatic address assignment.
#[derive(Debug, Clone, Default)]
pub struct LabSpec {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub lans: Vec<Named<LanSpec>>,
    pub hosts: Vec<Named<HostSpec>>,
    /// Where `hosts` is written, if it is: an empty `[hosts]` is the place to say "no hosts".
    pub hosts_span: Option<Span>,
    pub containers: Vec<Named<ContainerSpec>>,
    pub servers: Vec<Named<ServerSpec>>,
    pub clients: Vec<Named<ClientSpec>>,
    pub expect: Option<ExpectSpec>,
    pub machine: Option<MachineSpec>,
    pub run: Option<RunSpec>,
}

#[derive(Debug, Clone)]
pub struct LanSpec {
    pub subnet: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct HostSpec {
    pub lan: Option<Spanned<String>>,
    pub addresses: Option<StringList>,
    pub sysctls: Vec<SysctlSpec>,
    pub docker: Option<DockerSpec>,
}

/// `[hosts.X.docker]`; every key is optional.
#[derive(Debug, Clone)]
pub struct DockerSpec {
    pub span: Span,
    /// daemon.json's `firewall-backend`.
    pub firewall: Option<Spanned<String>>,
    pub bridge: Option<Spanned<String>>,
    pub subnet: Option<Spanned<String>>,
    pub nat: Option<NatSpec>,
    /// `[hosts.X.docker.networks.NAME]`: user-defined bridge networks, in file order.
    pub networks: Vec<Named<NetworkSpec>>,
}

/// `[hosts.X.docker.networks.NAME]` (`docker network create`); every key is optional.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub bridge: Option<Spanned<String>>,
    pub subnet: Option<Spanned<String>>,
    pub nat: Option<NatSpec>,
}

/// `nat = "masquerade"` / `"none"`, or a table for SNAT pools and port ranges.
#[derive(Debug, Clone)]
pub enum NatSpec {
    Mode(Spanned<String>),
    Table(NatTableSpec),
}

#[derive(Debug, Clone)]
pub struct NatTableSpec {
    pub span: Span,
    pub snat: Option<StringList>,
    pub masquerade: Option<Spanned<bool>>,
    /// `"lo-hi"` or a single port; an integer is kept as its decimal text.
    pub ports: Option<Spanned<String>>,
    pub persistent: Option<Spanned<bool>>,
    /// kube-proxy's `--random-fully` on `masquerade` or `snat`.
    pub random_fully: Option<Spanned<bool>>,
    /// A cloud's NAT: `"aws-nat-gateway"`, `"gcp-cloud-nat"`, `"azure-lb-outbound"`.
    pub profile: Option<Spanned<String>>,
    /// GCP's static allocation per VM (a power of two).
    pub min_ports_per_vm: Option<Spanned<i64>>,
}

/// One sysctl. Dotted keys written bare (`net.ipv4.x = 1`) are nested tables in TOML; they are
/// flattened back into one dotted key whose span runs from the first part to the last.
#[derive(Debug, Clone)]
pub struct SysctlSpec {
    pub key: Spanned<String>,
    /// Strings as written; integers as their decimal text.
    pub value: Spanned<String>,
}

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub host: Option<Spanned<String>>,
    pub replicas: Option<Spanned<i64>>,
    pub address: Option<Spanned<String>>,
    pub sysctls: Vec<SysctlSpec>,
    /// The host's Docker network the containers are attached to (`docker run --network`).
    pub network: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub command: Option<StringList>,
    pub processes: Option<Spanned<i64>>,
    pub user: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub containers: Option<StringList>,
    pub connect: Option<StringList>,
    pub connections: Option<Spanned<i64>>,
    pub ping_interval: Option<Spanned<String>>,
    pub command: Option<StringList>,
    pub processes: Option<Spanned<i64>>,
    pub user: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub rate: Option<Spanned<i64>>,
    pub in_flight: Option<Spanned<i64>>,
}

/// `[run]`: how `lab run` paces the run (its flags override each).
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub settle: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub hold: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct ExpectSpec {
    pub span: Span,
    pub established: Option<Spanned<CountSpec>>,
}

/// `[machine]`: what the lab may change outside its namespaces, and how it uses the kernel's
/// tables.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Global limits `lab run` may raise when the workload needs more (sysctl names).
    pub raise: Option<StringList>,
    /// `"sized"` (busy namespaces get TCP tables of their own) or `"shared"` (the kernel's
    /// default: every namespace uses the host's).
    pub tcp_tables: Option<Spanned<String>>,
}

/// An expected count: `64512` or `{ min = .., max = .. }` (the span of the whole is outside).
#[derive(Debug, Clone)]
pub enum CountSpec {
    Exact(i64),
    Range {
        min: Option<Spanned<i64>>,
        max: Option<Spanned<i64>>,
    },
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "lans",
    "hosts",
    "containers",
    "servers",
    "clients",
    "expect",
    "machine",
    "run",
];
const LAN_KEYS: &[&str] = &["subnet"];
const HOST_KEYS: &[&str] = &["lan", "addresses", "sysctls", "docker"];
const DOCKER_KEYS: &[&str] = &["firewall", "bridge", "subnet", "nat", "networks"];
const NETWORK_KEYS: &[&str] = &["bridge", "subnet", "nat"];
const NAT_KEYS: &[&str] = &[
    "snat",
    "masquerade",
    "ports",
    "persistent",
    "random_fully",
    "profile",
    "min_ports_per_vm",
];
const CONTAINER_KEYS: &[&str] = &["host", "replicas", "address", "sysctls", "network"];
const SERVER_KEYS: &[&str] = &["host", "port", "command", "processes", "user"];
const CLIENT_KEYS: &[&str] = &[
    "containers",
    "connect",
    "connections",
    "ping_interval",
    "command",
    "processes",
    "user",
    "connect_timeout",
    "rate",
    "in_flight",
];
const RUN_KEYS: &[&str] = &["settle", "timeout", "hold"];
const EXPECT_KEYS: &[&str] = &["established"];
const MACHINE_KEYS: &[&str] = &["raise", "tcp_tables"];
const RANGE_KEYS: &[&str] = &["min", "max"];

/// Reads a lab file's TOML. `None` only for a TOML syntax error (reported in `diags`): past
/// that, whatever could be read is returned alongside the problems found.
pub fn parse(text: &str, diags: &mut Vec<Diagnostic>) -> Option<LabSpec> {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            diags.push(syntax_error(&e));
            return None;
        }
    };
    let root = TableView {
        table: TableRef::Table(doc.as_table()),
        span: 0..0,
        path: String::new(),
    };
    let mut r = Reader::new(root, TOP_KEYS, diags);
    let hosts_field = r.field("hosts");
    Some(LabSpec {
        name: r.optional("name", string),
        description: r.optional("description", string),
        lans: r
            .optional("lans", |f, d| section(f, d, lan))
            .unwrap_or_default(),
        hosts: r
            .optional("hosts", |f, d| section(f, d, host))
            .unwrap_or_default(),
        hosts_span: hosts_field.map(|f| f.span()),
        containers: r
            .optional("containers", |f, d| section(f, d, container))
            .unwrap_or_default(),
        servers: r
            .optional("servers", |f, d| section(f, d, server))
            .unwrap_or_default(),
        clients: r
            .optional("clients", |f, d| section(f, d, client))
            .unwrap_or_default(),
        expect: r.optional("expect", |f, d| table(&f, d).map(|t| expect(t, d))),
        machine: r.optional("machine", |f, d| table(&f, d).map(|t| machine(t, d))),
        run: r.optional("run", |f, d| table(&f, d).map(|t| run(t, d))),
    })
}

fn syntax_error(e: &toml_edit::TomlError) -> Diagnostic {
    let message = e.message().trim().replace('\n', "; ");
    Diagnostic::error(e.span().unwrap_or(0..0), format!("invalid TOML: {message}"))
}

fn lan(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> LanSpec {
    let mut r = Reader::new(t, LAN_KEYS, d);
    LanSpec {
        subnet: r.required("subnet", string),
    }
}

fn host(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> HostSpec {
    let mut r = Reader::new(t, HOST_KEYS, d);
    HostSpec {
        lan: r.required("lan", string),
        addresses: r.required("addresses", string_list),
        sysctls: r.optional("sysctls", sysctls).unwrap_or_default(),
        docker: r.optional("docker", |f, d| table(&f, d).map(|t| docker(t, d))),
    }
}

fn docker(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> DockerSpec {
    let span = t.span.clone();
    let mut r = Reader::new(t, DOCKER_KEYS, d);
    DockerSpec {
        span,
        firewall: r.optional("firewall", string),
        bridge: r.optional("bridge", string),
        subnet: r.optional("subnet", string),
        nat: r.optional("nat", nat),
        networks: r
            .optional("networks", |f, d| section(f, d, network))
            .unwrap_or_default(),
    }
}

fn network(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> NetworkSpec {
    let mut r = Reader::new(t, NETWORK_KEYS, d);
    NetworkSpec {
        bridge: r.optional("bridge", string),
        subnet: r.optional("subnet", string),
        nat: r.optional("nat", nat),
    }
}

fn nat(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<NatSpec> {
    match f.node {
        Node::Value(Value::String(s)) => {
            Some(NatSpec::Mode(Spanned::new(s.value().clone(), f.span())))
        }
        Node::Table(_) | Node::Inline(_) => table(&f, d).map(|t| NatSpec::Table(nat_table(t, d))),
        _ => {
            d.push(
                type_error(&f, "a string or a table")
                    .with_help("write \"masquerade\", \"none\", or e.g. { snat = [\"10.0.0.5\"] }"),
            );
            None
        }
    }
}

fn nat_table(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> NatTableSpec {
    let span = t.span.clone();
    let mut r = Reader::new(t, NAT_KEYS, d);
    NatTableSpec {
        span,
        snat: r.optional("snat", string_list),
        masquerade: r.optional("masquerade", boolean),
        ports: r.optional("ports", string_or_integer),
        persistent: r.optional("persistent", boolean),
        random_fully: r.optional("random_fully", boolean),
        profile: r.optional("profile", string),
        min_ports_per_vm: r.optional("min_ports_per_vm", integer),
    }
}

fn container(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> ContainerSpec {
    let mut r = Reader::new(t, CONTAINER_KEYS, d);
    ContainerSpec {
        host: r.required("host", string),
        replicas: r.optional("replicas", integer),
        address: r.optional("address", string),
        sysctls: r.optional("sysctls", sysctls).unwrap_or_default(),
        network: r.optional("network", string),
    }
}

fn server(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> ServerSpec {
    let mut r = Reader::new(t, SERVER_KEYS, d);
    ServerSpec {
        host: r.required("host", string),
        port: r.required("port", integer),
        command: r.optional("command", string_list),
        processes: r.optional("processes", integer),
        user: r.optional("user", string),
    }
}

fn client(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> ClientSpec {
    let mut r = Reader::new(t, CLIENT_KEYS, d);
    ClientSpec {
        containers: r.required("containers", string_list),
        connect: r.required("connect", string_list),
        connections: r.required("connections", integer),
        ping_interval: r.optional("ping_interval", string),
        command: r.optional("command", string_list),
        processes: r.optional("processes", integer),
        user: r.optional("user", string),
        connect_timeout: r.optional("connect_timeout", string),
        rate: r.optional("rate", integer),
        in_flight: r.optional("in_flight", integer),
    }
}

fn run(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> RunSpec {
    let mut r = Reader::new(t, RUN_KEYS, d);
    RunSpec {
        settle: r.optional("settle", string),
        timeout: r.optional("timeout", string),
        hold: r.optional("hold", string),
    }
}

fn expect(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> ExpectSpec {
    let span = t.span.clone();
    let mut r = Reader::new(t, EXPECT_KEYS, d);
    ExpectSpec {
        span,
        established: r.optional("established", count),
    }
}

fn machine(t: TableView<'_>, d: &mut Vec<Diagnostic>) -> MachineSpec {
    let mut r = Reader::new(t, MACHINE_KEYS, d);
    MachineSpec {
        raise: r.optional("raise", string_list),
        tcp_tables: r.optional("tcp_tables", string),
    }
}

fn count(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Spanned<CountSpec>> {
    let span = f.span();
    match f.node {
        Node::Value(Value::Integer(i)) => Some(Spanned::new(CountSpec::Exact(*i.value()), span)),
        Node::Table(_) | Node::Inline(_) => {
            let t = table(&f, d)?;
            let mut r = Reader::new(t, RANGE_KEYS, d);
            let min = r.optional("min", integer);
            let max = r.optional("max", integer);
            Some(Spanned::new(CountSpec::Range { min, max }, span))
        }
        _ => {
            d.push(
                type_error(&f, "an integer or a table")
                    .with_help("write an exact count, or a range like { min = 1, max = 10 }"),
            );
            None
        }
    }
}

/// A table of named tables (`[hosts.a]`, `[hosts.b]`, ...), each read by `body`.
fn section<'d, T>(
    f: Field<'d>,
    d: &mut Vec<Diagnostic>,
    body: fn(TableView<'d>, &mut Vec<Diagnostic>) -> T,
) -> Option<Vec<Named<T>>> {
    let outer = table(&f, d)?;
    let mut out = Vec::new();
    for entry in outer.entries() {
        let name = Spanned::new(entry.key.to_owned(), entry.key_span.clone());
        if let Some(t) = table(&entry, d) {
            let span = t.span.clone();
            out.push(Named {
                name,
                span,
                body: body(t, d),
            });
        }
    }
    Some(out)
}

/// `sysctls = { "net.x.y" = "1" }` or `[....sysctls]`, bare dotted keys flattened.
fn sysctls(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Vec<SysctlSpec>> {
    let t = table(&f, d)?;
    let mut out = Vec::new();
    flatten_sysctls(&t, "", None, d, &mut out);
    Some(out)
}

fn flatten_sysctls(
    t: &TableView<'_>,
    prefix: &str,
    key_start: Option<usize>,
    d: &mut Vec<Diagnostic>,
    out: &mut Vec<SysctlSpec>,
) {
    for entry in t.entries() {
        let key = format!("{prefix}{}", entry.key);
        let start = key_start.unwrap_or(entry.key_span.start);
        if matches!(entry.node, Node::Table(_) | Node::Inline(_)) {
            if let Some(sub) = table(&entry, d) {
                flatten_sysctls(&sub, &format!("{key}."), Some(start), d, out);
            }
            continue;
        }
        let key_span = start..entry.key_span.end.max(start);
        if let Some(value) = string_or_integer(entry, d) {
            out.push(SysctlSpec {
                key: Spanned::new(key, key_span),
                value,
            });
        }
    }
}

/// A table (standard, dotted or inline) being read, with the dotted path used in messages.
#[derive(Clone)]
struct TableView<'d> {
    table: TableRef<'d>,
    span: Span,
    path: String,
}

#[derive(Clone, Copy)]
enum TableRef<'d> {
    Table(&'d Table),
    Inline(&'d InlineTable),
}

impl<'d> TableView<'d> {
    fn as_table_like(&self) -> &'d dyn TableLike {
        match self.table {
            TableRef::Table(t) => t,
            TableRef::Inline(t) => t,
        }
    }

    /// The key-value pairs in the order they are written.
    fn entries(&self) -> Vec<Field<'d>> {
        let keys: Vec<&'d str> = match self.table {
            TableRef::Table(t) => t.iter().map(|(k, _)| k).collect(),
            TableRef::Inline(t) => t.iter().map(|(k, _)| k).collect(),
        };
        keys.into_iter().filter_map(|k| self.field(k)).collect()
    }

    fn field(&self, key: &str) -> Option<Field<'d>> {
        let (k, item) = self.as_table_like().get_key_value(key)?;
        let node = Node::from_item(item)?;
        let key_span = k.span().or_else(|| node.span()).unwrap_or(0..0);
        Some(Field {
            key: k.get(),
            key_span,
            node,
            path: join_path(&self.path, k),
        })
    }

    /// `[hosts.a]` for messages; the top level has no header.
    fn describe(&self) -> String {
        if self.path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in [{}]", self.path)
        }
    }
}

fn join_path(parent: &str, key: &Key) -> String {
    let k = key.get();
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let k = if bare { k.to_owned() } else { format!("{k:?}") };
    if parent.is_empty() {
        k
    } else {
        format!("{parent}.{k}")
    }
}

/// What a key holds, whichever way TOML let the user write it.
#[derive(Clone, Copy)]
enum Node<'d> {
    Table(&'d Table),
    Inline(&'d InlineTable),
    Value(&'d Value),
    TableArray(&'d ArrayOfTables),
}

impl<'d> Node<'d> {
    fn from_item(item: &'d Item) -> Option<Self> {
        match item {
            Item::None => None,
            Item::Table(t) => Some(Self::Table(t)),
            Item::ArrayOfTables(a) => Some(Self::TableArray(a)),
            Item::Value(v) => Some(Self::from_value(v)),
        }
    }

    fn from_value(v: &'d Value) -> Self {
        match v {
            Value::InlineTable(t) => Self::Inline(t),
            v => Self::Value(v),
        }
    }

    fn span(&self) -> Option<Span> {
        match self {
            Self::Table(t) => t.span(),
            Self::Inline(t) => t.span(),
            Self::Value(v) => v.span(),
            Self::TableArray(a) => a.span(),
        }
    }

    /// The type as a user would say it, with its article: "an integer".
    fn kind(&self) -> &'static str {
        match self {
            Self::Table(_) | Self::Inline(_) => "a table",
            Self::TableArray(_) => "an array of tables",
            Self::Value(Value::String(_)) => "a string",
            Self::Value(Value::Integer(_)) => "an integer",
            Self::Value(Value::Float(_)) => "a float",
            Self::Value(Value::Boolean(_)) => "a boolean",
            Self::Value(Value::Datetime(_)) => "a date-time",
            Self::Value(Value::Array(_)) => "an array",
            Self::Value(Value::InlineTable(_)) => "a table",
        }
    }
}

/// One key of a table (or one element of an array, which inherits the array's key).
#[derive(Clone)]
struct Field<'d> {
    key: &'d str,
    key_span: Span,
    node: Node<'d>,
    path: String,
}

impl Field<'_> {
    /// The value's span: where type and content problems are reported.
    fn span(&self) -> Span {
        self.node.span().unwrap_or_else(|| self.key_span.clone())
    }
}

/// Reads the keys of one table: reports unknown keys (with a suggestion) up front, then hands
/// out the known ones, reporting missing required keys at the table's header.
struct Reader<'d, 'x> {
    table: TableView<'d>,
    diags: &'x mut Vec<Diagnostic>,
}

impl<'d, 'x> Reader<'d, 'x> {
    fn new(table: TableView<'d>, known: &[&str], diags: &'x mut Vec<Diagnostic>) -> Self {
        for f in table.entries() {
            if !known.contains(&f.key) {
                diags.push(unknown_key(&f, &table, known));
            }
        }
        Self { table, diags }
    }

    fn field(&self, key: &str) -> Option<Field<'d>> {
        self.table.field(key)
    }

    fn optional<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Field<'d>, &mut Vec<Diagnostic>) -> Option<T>,
    ) -> Option<T> {
        let f = self.field(key)?;
        read(f, self.diags)
    }

    fn required<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Field<'d>, &mut Vec<Diagnostic>) -> Option<T>,
    ) -> Option<T> {
        if self.field(key).is_none() {
            self.diags.push(Diagnostic::error(
                self.table.span.clone(),
                format!("missing required key `{key}` {}", self.table.describe()),
            ));
            return None;
        }
        self.optional(key, read)
    }
}

fn unknown_key(f: &Field<'_>, table: &TableView<'_>, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(
        f.key_span.clone(),
        format!("unknown key `{}` {}", f.key, table.describe()),
    );
    match did_you_mean(f.key, known.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("expected one of: {}", backticked(known))),
    }
}

fn backticked(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    quoted.join(", ")
}

fn type_error(f: &Field<'_>, expected: &str) -> Diagnostic {
    Diagnostic::error(
        f.span(),
        format!(
            "wrong type for `{}`: expected {expected}, found {}",
            f.key,
            f.node.kind()
        ),
    )
}

fn string(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Spanned<String>> {
    match f.node {
        Node::Value(Value::String(s)) => Some(Spanned::new(s.value().clone(), f.span())),
        _ => {
            d.push(type_error(&f, "a string"));
            None
        }
    }
}

fn integer(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Spanned<i64>> {
    match f.node {
        Node::Value(Value::Integer(i)) => Some(Spanned::new(*i.value(), f.span())),
        _ => {
            d.push(type_error(&f, "an integer"));
            None
        }
    }
}

fn boolean(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Spanned<bool>> {
    match f.node {
        Node::Value(Value::Boolean(b)) => Some(Spanned::new(*b.value(), f.span())),
        _ => {
            d.push(type_error(&f, "a boolean"));
            None
        }
    }
}

/// Sysctl values and port ranges: `"1024 65535"` or `2` mean the same to the kernel.
fn string_or_integer(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<Spanned<String>> {
    match f.node {
        Node::Value(Value::String(s)) => Some(Spanned::new(s.value().clone(), f.span())),
        Node::Value(Value::Integer(i)) => Some(Spanned::new(i.value().to_string(), f.span())),
        _ => {
            d.push(type_error(&f, "a string or an integer"));
            None
        }
    }
}

/// An array of strings; elements of another type are reported and left out.
fn string_list(f: Field<'_>, d: &mut Vec<Diagnostic>) -> Option<StringList> {
    let Node::Value(Value::Array(a)) = f.node else {
        d.push(type_error(&f, "an array of strings"));
        return None;
    };
    let items = a
        .iter()
        .filter_map(|v| {
            let elem = Field {
                node: Node::from_value(v),
                ..f.clone()
            };
            match elem.node {
                Node::Value(Value::String(s)) => Some(Spanned::new(s.value().clone(), elem.span())),
                _ => {
                    d.push(type_error(&elem, "an array of strings").with_help(format!(
                        "this element is {}; every element must be a string",
                        elem.node.kind()
                    )));
                    None
                }
            }
        })
        .collect();
    Some(Spanned::new(items, f.span()))
}

/// Any kind of table; for section entries and sub-tables like `docker` and `nat`.
fn table<'d>(f: &Field<'d>, d: &mut Vec<Diagnostic>) -> Option<TableView<'d>> {
    let table = match f.node {
        Node::Table(t) => TableRef::Table(t),
        Node::Inline(t) => TableRef::Inline(t),
        _ => {
            d.push(type_error(f, "a table"));
            return None;
        }
    };
    Some(TableView {
        table,
        span: f.span(),
        path: f.path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::diag::Source;

    fn parse_ok(text: &str) -> (LabSpec, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let spec = parse(text, &mut d).unwrap();
        d.sort_by_key(|d| d.span.start);
        (spec, d)
    }

    fn at(text: &str, d: &Diagnostic) -> (usize, usize) {
        Source::new("t.toml", text).line_col(d.span.start)
    }

    #[test]
    fn reads_sections_in_file_order_with_spans() {
        let text = r#"name = "x"
[hosts.b]
lan = "l"
addresses = ["1"]
[hosts.a]
lan = "l"
addresses = []
"#;
        let (spec, d) = parse_ok(text);
        assert!(d.is_empty(), "{d:?}");
        let names: Vec<_> = spec.hosts.iter().map(|h| h.name.value.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(&text[spec.hosts[0].span.clone()], "[hosts.b]");
        assert_eq!(&text[spec.hosts[0].name.span.clone()], "b");
        let lan = spec.hosts[0].body.lan.as_ref().unwrap();
        assert_eq!(&text[lan.span.clone()], "\"l\"");
    }

    #[test]
    fn syntax_error_has_a_location() {
        let text = "name = \"x\"\n[lans.a]\nsubnet = \"x\" y\n";
        let mut d = Vec::new();
        assert!(parse(text, &mut d).is_none());
        assert_eq!(d.len(), 1);
        assert!(d[0].message.starts_with("invalid TOML: "), "{:?}", d[0]);
        assert_eq!(at(text, &d[0]), (3, 14));
    }

    #[test]
    fn unknown_keys_at_every_level_with_suggestions() {
        let text = r#"nam = "x"
[hosts.h]
lan = "l"
addresses = ["1"]
sysctl = {}
[hosts.h.docker]
brige = "d"
nat = { snatt = [] }
"#;
        let (_, d) = parse_ok(text);
        let found: Vec<_> = d
            .iter()
            .map(|d| (d.message.as_str(), d.help.as_deref(), at(text, d)))
            .collect();
        let unknown = |m, h, at| (m, Some(h), at);
        assert_eq!(
            found,
            [
                unknown(
                    "unknown key `nam` at the top level",
                    "did you mean `name`?",
                    (1, 1)
                ),
                unknown(
                    "unknown key `sysctl` in [hosts.h]",
                    "did you mean `sysctls`?",
                    (5, 1)
                ),
                unknown(
                    "unknown key `brige` in [hosts.h.docker]",
                    "did you mean `bridge`?",
                    (7, 1)
                ),
                unknown(
                    "unknown key `snatt` in [hosts.h.docker.nat]",
                    "did you mean `snat`?",
                    (8, 9)
                ),
            ]
        );
    }

    #[test]
    fn unknown_key_without_a_near_miss_lists_the_known_ones() {
        let (_, d) = parse_ok("[lans.l]\nsubnet = \"x\"\nzzzzzz = 1\n");
        assert_eq!(d[0].help.as_deref(), Some("expected one of: `subnet`"));
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let text = r#"name = 3
[hosts.h]
lan = "l"
addresses = ["1", 2]
[servers.s]
host = "h"
port = "80"
"#;
        let (spec, d) = parse_ok(text);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(
            d[0].message,
            "wrong type for `name`: expected a string, found an integer"
        );
        assert_eq!(at(text, &d[0]), (1, 8));
        assert!(
            d[1].message
                .contains("expected an array of strings, found an integer")
        );
        assert_eq!(at(text, &d[1]), (4, 19));
        assert!(
            d[2].message
                .contains("`port`: expected an integer, found a string")
        );
        assert_eq!(at(text, &d[2]), (7, 8));
        // The good element is still there.
        assert_eq!(
            spec.hosts[0].body.addresses.as_ref().unwrap().value.len(),
            1
        );
    }

    #[test]
    fn missing_required_key_points_at_the_header() {
        let text = "name = \"x\"\n\n[lans.l]\n";
        let (_, d) = parse_ok(text);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].message, "missing required key `subnet` in [lans.l]");
        assert_eq!(at(text, &d[0]), (3, 1));
    }

    #[test]
    fn sysctls_bare_dotted_keys_are_flattened() {
        let text = r#"[hosts.h]
lan = "l"
addresses = []
sysctls = { net.ipv4.tcp_syn_retries = 2, "net.core.somaxconn" = "4096" }
"#;
        let (spec, d) = parse_ok(text);
        assert!(d.is_empty(), "{d:?}");
        let s = &spec.hosts[0].body.sysctls;
        assert_eq!(s[0].key.value, "net.ipv4.tcp_syn_retries");
        assert_eq!(&text[s[0].key.span.clone()], "net.ipv4.tcp_syn_retries");
        assert_eq!(s[0].value.value, "2");
        assert_eq!(s[1].key.value, "net.core.somaxconn");
    }

    #[test]
    fn section_entries_must_be_tables() {
        let text = "[hosts]\nh = 1\n[[lans]]\nsubnet = \"x\"\n";
        let (_, d) = parse_ok(text);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(
            d[0].message,
            "wrong type for `h`: expected a table, found an integer"
        );
        assert_eq!(at(text, &d[0]), (2, 5));
        assert_eq!(
            d[1].message,
            "wrong type for `lans`: expected a table, found an array of tables"
        );
        assert_eq!(at(text, &d[1]), (3, 1));
    }

    #[test]
    fn nat_and_expect_take_two_shapes() {
        let text = r#"[hosts.h]
lan = "l"
addresses = []
docker = { nat = { masquerade = true, ports = 5000 } }
[expect]
established = { min = 1 }
"#;
        let (spec, d) = parse_ok(text);
        assert!(d.is_empty(), "{d:?}");
        let docker = spec.hosts[0].body.docker.as_ref().unwrap();
        let Some(NatSpec::Table(nat)) = &docker.nat else {
            panic!("{docker:?}")
        };
        assert_eq!(nat.ports.as_ref().unwrap().value, "5000");
        let est = spec.expect.unwrap().established.unwrap();
        assert!(matches!(
            est.value,
            CountSpec::Range {
                min: Some(_),
                max: None
            }
        ));

        let text = "[hosts.h.docker]\nnat = 1\n[expect]\nestablished = \"1\"\n";
        let (_, d) = parse_ok(text);
        let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "missing required key `lan` in [hosts.h]",
                "missing required key `addresses` in [hosts.h]",
                "wrong type for `nat`: expected a string or a table, found an integer",
                "wrong type for `established`: expected an integer or a table, found a string",
            ]
        );
        // An implicit table (no header of its own) is reported at its name in a longer header.
        assert_eq!(at(text, &d[0]), (1, 8));
    }
}
