//! The kernel's tables sized for the lab (root, real namespaces): a host or container that will
//! hold many sockets gets a TCP established-hash of its own, sized from the plan, through the
//! `tcp_child_ehash_entries` of the lab namespace it is created from; the others share the
//! machine's table, and nothing on the host changes.

mod common;

use common::*;

/// `net.ipv4.tcp_ehash_entries` in `ns` (the initial namespace when `None`): the table's
/// buckets, negative when the namespace shares the machine's table.
fn ehash(ns: Option<&str>) -> i64 {
    let cmd = match ns {
        Some(ns) => format!("ip netns exec {ns} sysctl -n net.ipv4.tcp_ehash_entries"),
        None => "sysctl -n net.ipv4.tcp_ehash_entries".to_owned(),
    };
    sh(&cmd).trim().parse().expect("a number")
}

/// One container with `per` connections to a server host; a second, idle container.
fn lab_text(per: u32) -> String {
    format!(
        r#"name = "tables"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5"]
[containers.c]
host = "client-host"
replicas = 2
[servers.srv]
host = "server-host"
port = 9000
[clients.load]
containers = ["c1"]
connect = ["192.168.49.5:9000"]
connections = {per}
"#
    )
}

#[test]
fn busy_namespaces_get_an_established_hash_of_their_own() {
    if !root_or_skip("busy_namespaces_get_an_established_hash_of_their_own") {
        return;
    }
    let before = host_snapshot();
    let machine = ehash(None);
    // 20,000 sockets: two buckets a socket, the next power of two is 65,536, for the server's host and for each
    // container of the client's host (one size for the host's containers, the busiest's).
    let file = temp_lab("tables", &lab_text(20_000));
    let name = unique_name("tbl");
    {
        let up = LabGuard::up(&file, &name);
        assert_eq!(ehash(Some(&up.ns("server-host"))), 65_536);
        assert_eq!(ehash(Some(&up.ns("c1"))), 65_536);
        assert_eq!(ehash(Some(&up.ns("c2"))), 65_536);
        // The LAN and the client's host hold no sockets of their own: the machine's table.
        assert_eq!(ehash(Some(&up.ns("client-host"))), -machine);
        assert_eq!(ehash(Some(&up.ns("lan"))), -machine);
        // `lab check` says so.
        let out = lab(&["check", file.to_str().expect("utf-8")]);
        let shown = text(&out);
        assert!(
            shown.contains("TCP established-hash: 65,536 buckets of its own"),
            "{shown}"
        );
        assert!(
            shown.contains("each of its containers: 65,536 buckets of its own"),
            "{shown}"
        );
    }
    assert_gone(&name);

    // Below 16,384 sockets every namespace keeps the machine's table.
    let file = temp_lab("tables-small", &lab_text(1_000));
    let name = unique_name("tbs");
    {
        let up = LabGuard::up(&file, &name);
        for node in ["server-host", "c1", "client-host"] {
            assert_eq!(ehash(Some(&up.ns(node))), -machine, "{node}");
        }
    }
    assert_gone(&name);

    // `tcp_tables = "shared"`: as busy as the first, on the machine's table, as the kernel does.
    let shared = format!("{}[machine]\ntcp_tables = \"shared\"\n", lab_text(20_000));
    let file = temp_lab("tables-shared", &shared);
    let name = unique_name("tbh");
    {
        let up = LabGuard::up(&file, &name);
        for node in ["server-host", "c1", "c2", "client-host"] {
            assert_eq!(ehash(Some(&up.ns(node))), -machine, "{node}");
        }
        let shown = text(&lab(&["check", file.to_str().expect("utf-8")]));
        assert!(
            shown.contains("TCP established-hash: the machine's shared one"),
            "{shown}"
        );
    }
    assert_gone(&name);
    assert_eq!(ehash(None), machine, "the machine's table is untouched");
    assert_eq!(
        sh("sysctl -n net.ipv4.tcp_child_ehash_entries").trim(),
        "0",
        "the host's own child setting is untouched"
    );
    assert_eq!(before, host_snapshot(), "the initial namespace changed");
}
