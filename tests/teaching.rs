//! The teaching outputs are true: `lab show --commands` builds the same lab by hand, and
//! `lab graph` describes it.

mod common;

use std::time::Duration;

use common::*;

/// Runs the printed commands with `sh` (under a name of its own), then checks that the
/// hand-built lab has what `lab up` builds and that it translates like Docker does.
#[test]
fn the_printed_commands_build_a_working_lab() {
    if !root_or_skip("the_printed_commands_build_a_working_lab") {
        return;
    }
    let name = unique_name("sh");
    let out = lab(&[
        "show",
        "--commands",
        "--name",
        &name,
        lab_file("02-cross-host.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let script = String::from_utf8(out.stdout).unwrap();
    let removal = script
        .lines()
        .find_map(|l| l.strip_prefix("# for ns in "))
        .map(|l| format!("for ns in {l}"))
        .expect("the script says how to remove the lab");

    /// Removes the hand-built namespaces even if an assertion fails.
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(&self.0)
                .status();
        }
    }
    let _remove = Remove(format!("{removal} 2>/dev/null"));
    let built = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run sh");
    assert!(
        built.status.success(),
        "the printed commands failed:\n{}",
        text(&built)
    );

    let ns = |node: &str| format!("{name}-{node}");
    let link = sh(&format!("ip -n {} -o link show dev eth0", ns("c1")));
    assert!(link.contains("02:42:ac:11:00:02"), "{link}");
    let rules = sh(&format!(
        "ip netns exec {} nft list ruleset",
        ns("client-host")
    ));
    assert!(
        rules.contains("ip saddr 172.17.0.0/16 oifname != \"docker0\" counter packets"),
        "{rules}"
    );
    let server = Acceptor::start(&ns("server-host"), "0.0.0.0:9000");
    let s = connect_from(&ns("c1"), "192.168.49.5:9000", Duration::from_secs(3))
        .expect("through the NAT");
    let port = s.local_addr().unwrap().port();
    std::thread::sleep(Duration::from_millis(50));
    let peers = server.finish();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].to_string(), format!("192.168.49.6:{port}"));
    drop(s);
    drop(_remove);
    assert!(
        namespaces_with_prefix(&format!("{name}-")).is_empty(),
        "the printed removal works"
    );
}

#[test]
fn graph_writes_mermaid_and_dot() {
    let file = lab_file("03-more-server-addresses.toml");
    let out = lab(&["graph", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(
        m.starts_with("graph LR") && m.contains("192.168.49.25"),
        "{m}"
    );
    let out = lab(&["graph", "--format", "dot", file.to_str().unwrap()]);
    let d = String::from_utf8_lossy(&out.stdout);
    assert!(d.starts_with("graph \"more-dst\" {"), "{d}");
    let out = lab(&["graph", "--format", "svg", file.to_str().unwrap()]);
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        assert!(out.status.success(), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    } else {
        assert_eq!(
            out.status.code(),
            Some(3),
            "without Graphviz: {}",
            text(&out)
        );
        assert!(text(&out).contains("apt-get install graphviz"));
    }
}
