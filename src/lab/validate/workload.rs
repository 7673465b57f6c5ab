//! What runs in the lab: servers (host and port), client groups (members, targets, connections,
//! ping interval), the expected counts, and the listen queues a server's host gets.

use std::net::SocketAddrV4;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::lab::diag::Diagnostic;
use crate::lab::plan::{
    ClientGroup, ContainerId, Expect, HostId, SERVER_BACKLOG, SERVER_SYSCTLS, Server, Sysctl,
};
use crate::lab::spec::{ClientSpec, LabSpec, Named, ServerSpec, Spanned, StringList};

use super::values::{count_range, join, name, parse_duration, port, unknown_ref};
use super::{Validator, programs};
use crate::lab::command::Role;

const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(100);

impl<'s> Validator<'s, '_> {
    pub(super) fn servers(&mut self, specs: &[Named<ServerSpec>]) -> Vec<Server> {
        let mut out = Vec::new();
        for spec in specs {
            let name = name(&spec.name, "server", self.diags);
            let host = spec.body.host.as_ref().and_then(|h| self.host_ref(h));
            let port = spec.body.port.as_ref().and_then(|p| port(p, self.diags));
            let command = spec
                .body
                .command
                .as_ref()
                .map(|c| programs::command(c, Role::Server, self.diags));
            let processes = spec
                .body
                .processes
                .as_ref()
                .map(|p| programs::processes(p, self.diags));
            let user = spec
                .body
                .user
                .as_ref()
                .map(|u| programs::user(u, spec.body.command.is_some(), self.diags));
            if let (Some(name), Some(host), Some(port)) = (name, host, port)
                && let (Some(command), Some(processes), Some(user)) =
                    (valid(command), valid(processes), valid(user))
            {
                out.push(Server {
                    name,
                    host,
                    port,
                    command,
                    processes,
                    user,
                });
            }
        }
        out
    }

    pub(super) fn clients(
        &mut self,
        specs: &[Named<ClientSpec>],
        servers: &[Server],
    ) -> Vec<Option<ClientGroup>> {
        specs
            .iter()
            .map(|spec| self.client(spec, servers))
            .collect()
    }

    fn client(&mut self, spec: &Named<ClientSpec>, servers: &[Server]) -> Option<ClientGroup> {
        let name = name(&spec.name, "client", self.diags);
        let containers = spec
            .body
            .containers
            .as_ref()
            .map(|l| self.members(&spec.name.value, l));
        let connect = spec.body.connect.as_ref().map(|l| self.targets(l, servers));
        let connections = spec
            .body
            .connections
            .as_ref()
            .and_then(|c| self.connections(c));
        let ping_interval = match &spec.body.ping_interval {
            Some(raw) => self.ping_interval(raw),
            None => Some(DEFAULT_PING_INTERVAL),
        };
        let body = &spec.body;
        let command = body
            .command
            .as_ref()
            .map(|c| programs::command(c, Role::Client, self.diags));
        let processes = body
            .processes
            .as_ref()
            .map(|p| programs::processes(p, self.diags));
        let pacing = programs::pacing(body, self.diags);
        let user = body
            .user
            .as_ref()
            .map(|u| programs::user(u, body.command.is_some(), self.diags));
        Some(ClientGroup {
            name: name?,
            containers: containers?,
            connect: connect?,
            connections: connections?,
            ping_interval: ping_interval?,
            command: valid(command)?,
            processes: valid(processes)?,
            user: valid(user)?,
            pacing: pacing?,
        })
    }

    /// Entries are container groups (all replicas, in order) or single containers.
    fn members(&mut self, client: &str, list: &StringList) -> Vec<ContainerId> {
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`containers` is empty")
                    .with_help("list container groups like \"c\" or single containers like \"c2\""),
            );
        }
        let mut out: Vec<ContainerId> = Vec::new();
        for raw in &list.value {
            for id in self.resolve_member(raw) {
                if out.contains(&id) {
                    let c = &self.containers[id.0].raw;
                    let d = Diagnostic::error(
                        raw.span.clone(),
                        format!("container `{c}` is listed twice in client `{client}`"),
                    );
                    self.error(d);
                } else {
                    out.push(id);
                }
            }
        }
        out
    }

    fn resolve_member(&mut self, raw: &Spanned<String>) -> Vec<ContainerId> {
        if let Some(g) = self.groups.iter().find(|g| g.spec.name.value == raw.value) {
            return g.members.clone().map(ContainerId).collect();
        }
        if let Some(c) = self.containers.iter().position(|c| c.raw == raw.value) {
            return vec![ContainerId(c)];
        }
        let mut names: Vec<&str> = self
            .groups
            .iter()
            .map(|g| g.spec.name.value.as_str())
            .collect();
        for c in &self.containers {
            if !names.contains(&c.raw.as_str()) {
                names.push(&c.raw);
            }
        }
        let d = unknown_ref(raw, "container", "containers", &names);
        self.error(d);
        Vec::new()
    }

    /// Targets must be the lab's own hosts: the lab has no route anywhere else.
    fn targets(&mut self, list: &StringList, servers: &[Server]) -> Vec<SocketAddrV4> {
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`connect` is empty")
                    .with_help("list targets like \"192.168.49.5:9000\""),
            );
        }
        list.value
            .iter()
            .filter_map(|raw| self.target(raw, servers))
            .collect()
    }

    fn target(&mut self, raw: &Spanned<String>, servers: &[Server]) -> Option<SocketAddrV4> {
        let Ok(addr) = raw.value.parse::<SocketAddrV4>() else {
            self.error(
                Diagnostic::error(raw.span.clone(), format!("invalid target `{}`", raw.value))
                    .with_help("write an IPv4 address and a port, like \"192.168.49.5:9000\""),
            );
            return None;
        };
        if addr.port() == 0 {
            self.error(Diagnostic::error(
                raw.span.clone(),
                format!("target `{}` has port 0", raw.value),
            ));
            return None;
        }
        let Some(h) = self
            .hosts
            .iter()
            .position(|h| h.addresses.contains(addr.ip()))
        else {
            let listing: Vec<String> = self
                .hosts
                .iter()
                .map(|h| format!("{} ({})", h.spec.name.value, join(&h.addresses)))
                .collect();
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("{} is not an address of any host in this lab", addr.ip()),
                )
                .with_help(format!(
                    "clients can only reach the lab's hosts: {}",
                    listing.join(", ")
                )),
            );
            return None;
        };
        if !servers
            .iter()
            .any(|s| s.host == HostId(h) && s.port.get() == addr.port())
        {
            let host = &self.hosts[h].spec.name.value;
            let message = format!("no server listens on {addr} (host `{host}`)");
            let help = format!(
                "connections will be refused; unless that is the point, add a [servers.X] \
                 with host = \"{host}\" and port = {}",
                addr.port()
            );
            self.diags
                .push(Diagnostic::warning(raw.span.clone(), message).with_help(help));
        }
        Some(addr)
    }

    fn connections(&mut self, raw: &Spanned<i64>) -> Option<NonZeroU32> {
        let n = u32::try_from(raw.value).ok().and_then(NonZeroU32::new);
        if n.is_none() {
            self.error(Diagnostic::error(
                raw.span.clone(),
                format!(
                    "`connections = {}`: expected 1 to {} connections per container",
                    raw.value,
                    u32::MAX
                ),
            ));
        }
        n
    }

    fn ping_interval(&mut self, raw: &Spanned<String>) -> Option<Duration> {
        match parse_duration(&raw.value) {
            Ok(d) if d.is_zero() => {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    "`ping_interval` cannot be zero",
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    Diagnostic::error(
                        raw.span.clone(),
                        format!("invalid duration `{}`: {e}", raw.value),
                    )
                    .with_help("write a number and a unit: \"100s\", \"500ms\", \"2m\", \"1.5s\""),
                );
                None
            }
        }
    }

    pub(super) fn expect(&mut self, lab: &LabSpec) -> Expect {
        let established = lab
            .expect
            .as_ref()
            .and_then(|e| e.established.as_ref())
            .and_then(|c| count_range(c, self.diags));
        Expect { established }
    }
}

/// An optional key's value: `Some(None)` when absent, `None` when given but invalid (its
/// error is reported).
fn valid<T>(field: Option<Option<T>>) -> Option<Option<T>> {
    match field {
        None => Some(None),
        Some(v) => v.map(Some),
    }
}

/// A server's host gets queues as long as its listen backlog, unless the lab file sets them.
pub(super) fn server_queues(sysctls: &mut Vec<Sysctl>) {
    for key in SERVER_SYSCTLS {
        if !sysctls.iter().any(|s| s.key() == key) {
            sysctls.push(
                Sysctl::integer(key, i64::from(SERVER_BACKLOG))
                    .expect("the server's backlog is within the queues' bounds"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::lab::diag::Source;
    use crate::lab::plan::{CountRange, Plan};

    /// A server on a:9000 and three containers c1..c3; append a `[clients.l]` body.
    fn client_lab(body: &str) -> String {
        with(&format!(
            r#"[containers.c]
host = "a"
replicas = 3
[servers.s]
host = "a"
port = 9000
[clients.l]
{body}"#
        ))
    }

    #[test]
    fn client_members_and_targets() {
        let text = client_lab(
            "containers = [\"c3\", \"c1\"]\nconnect = [\"10.0.0.1:9000\", \"10.0.0.1:9000\"]\nconnections = 2\nping_interval = \"1.5s\"\n",
        );
        let plan = ok(&text).plan;
        let l = &plan.clients[0];
        assert_eq!(l.containers, [ContainerId(2), ContainerId(0)]);
        assert_eq!(l.ping_interval, Duration::from_millis(1500));
        assert_eq!(l.target_of(3), "10.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn client_errors() {
        let body = |s: &str| client_lab(&format!("{s}\n"));
        let rest = "connect = [\"10.0.0.1:9000\"]\nconnections = 1";
        let text = body(&format!("containers = [\"c\", \"c2\"]\n{rest}"));
        reported(
            &text,
            "container `c2` is listed twice in client `l`",
            (14, 20),
        );
        let text = body(&format!("containers = []\n{rest}"));
        reported(&text, "`containers` is empty", (14, 14));

        let members = "containers = [\"c\"]\n";
        let text = body(&format!(
            "{members}connect = [\"10.0.0.99:9000\"]\nconnections = 1"
        ));
        let d = reported(
            &text,
            "10.0.0.99 is not an address of any host in this lab",
            (15, 12),
        );
        assert_eq!(
            d.help.as_deref(),
            Some("clients can only reach the lab's hosts: a (10.0.0.1)")
        );
        let text = body(&format!(
            "{members}connect = [\"10.0.0.1:0\"]\nconnections = 1"
        ));
        reported(&text, "target `10.0.0.1:0` has port 0", (15, 12));
        let text = body(&format!(
            "{members}connect = [\"10.0.0.1\"]\nconnections = 1"
        ));
        reported(&text, "invalid target `10.0.0.1`", (15, 12));
        let text = body(&format!("{members}connect = []\nconnections = 1"));
        reported(&text, "`connect` is empty", (15, 11));

        let target = "connect = [\"10.0.0.1:9000\"]\n";
        let text = body(&format!("{members}{target}connections = 0"));
        reported(
            &text,
            "`connections = 0`: expected 1 to 4294967295",
            (16, 15),
        );
        let text = body(&format!("{members}{target}connections = 4294967296"));
        reported(&text, "`connections = 4294967296`", (16, 15));
        let text = body(&format!(
            "{members}{target}connections = 1\nping_interval = \"0s\""
        ));
        reported(&text, "`ping_interval` cannot be zero", (17, 17));
        let text = body(&format!(
            "{members}{target}connections = 1\nping_interval = \"10\""
        ));
        reported(&text, "invalid duration `10`: missing unit", (17, 17));
    }

    #[test]
    fn server_hosts_get_queues_as_long_as_the_backlog() {
        let sysctls = |plan: &Plan, h: usize| -> Vec<(String, String)> {
            plan.hosts[h]
                .sysctls
                .iter()
                .map(|s| (s.key().to_owned(), s.value().to_owned()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let backlog = SERVER_BACKLOG.to_string();
        // Two servers on one host: each queue once; a host without a server: none.
        let text = with(
            "[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n\
             [servers.s]\nhost = \"a\"\nport = 1\n[servers.t]\nhost = \"a\"\nport = 2\n",
        );
        let plan = ok(&text).plan;
        assert_eq!(
            sysctls(&plan, 0),
            [
                pair("net.core.somaxconn", &backlog),
                pair("net.ipv4.tcp_max_syn_backlog", &backlog)
            ]
        );
        assert_eq!(sysctls(&plan, 1), []);
        // What the lab file sets stays, first.
        let text = BASE.replace(
            "addresses",
            "sysctls = { \"net.core.somaxconn\" = 100 }\naddresses",
        ) + "[servers.s]\nhost = \"a\"\nport = 1\n";
        let plan = ok(&text).plan;
        assert_eq!(
            sysctls(&plan, 0),
            [
                pair("net.core.somaxconn", "100"),
                pair("net.ipv4.tcp_max_syn_backlog", &backlog)
            ]
        );
    }

    #[test]
    fn server_port_and_host() {
        let text = with("[servers.s]\nhost = \"a\"\nport = 0\n");
        reported(&text, "port 0 is out of range 1-65535", (9, 8));
        let text = with("[servers.s]\nhost = \"a\"\nport = 65536\n");
        reported(&text, "port 65536 is out of range", (9, 8));
        let text = with("[servers.s]\nhost = \"b\"\nport = 1\n");
        reported(&text, "unknown host `b`", (8, 8));
    }

    #[test]
    fn connecting_where_no_server_listens_is_a_warning() {
        let text =
            client_lab("containers = [\"c\"]\nconnect = [\"10.0.0.1:9001\"]\nconnections = 1\n");
        let loaded = ok(&text);
        let [w] = &loaded.warnings[..] else {
            panic!("{:?}", loaded.warnings)
        };
        assert!(!w.is_error());
        assert_eq!(w.message, "no server listens on 10.0.0.1:9001 (host `a`)");
        assert_eq!(
            Source::new("t.toml", text.as_str()).line_col(w.span.start),
            (15, 12)
        );
        // Alongside an error, the warning is still reported.
        let bad = text.replace("connections = 1", "connections = 0");
        assert!(rejected(&bad).iter().any(|d| !d.is_error()));
    }

    #[test]
    fn expected_counts() {
        let est = |s: &str| {
            ok(&with(&format!("[expect]\nestablished = {s}\n")))
                .plan
                .expect
                .established
        };
        assert_eq!(
            est("{ min = 10 }"),
            Some(CountRange {
                min: 10,
                max: u64::MAX
            })
        );
        assert_eq!(est("{ max = 10 }"), Some(CountRange { min: 0, max: 10 }));
        assert_eq!(
            est("{ min = 1, max = 2 }"),
            Some(CountRange { min: 1, max: 2 })
        );
        assert_eq!(est("7"), Some(CountRange::exact(7)));
        let bad = |s: &str| with(&format!("[expect]\nestablished = {s}\n"));
        reported(
            &bad("{ min = 5, max = 1 }"),
            "empty range: `min = 5` is larger than `max = 1`",
            (8, 15),
        );
        reported(
            &bad("{}"),
            "an expected range needs `min`, `max` or both",
            (8, 15),
        );
        reported(&bad("-1"), "a count cannot be negative", (8, 15));
    }
}
