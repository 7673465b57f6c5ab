//! Every lab in labs/ at full size, run with `lab run --json`: each must meet its `[expect]`.
//! One test runs them one after another: at 75,000-200,000 connections each, two at once would
//! only compete for the CPUs. The million itself is a benchmark (docs/bench.md), not a CI test:
//! CI runs `million-200k.toml`, the same topology at a fifth of the size.

mod common;

use common::*;

#[test]
fn every_lab_meets_its_expectations_at_full_size() {
    if !root_or_skip("every_lab_meets_its_expectations_at_full_size") {
        return;
    }
    let files: Vec<_> = lab_files()
        .into_iter()
        .filter(|f| !f.ends_with("million.toml"))
        .collect();
    assert!(files.len() >= 8, "{files:?}");
    let before = host_snapshot();
    let mut failures = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let name = unique_name(&format!("full{n}x"));
        let _guard = LabGuard { name: name.clone() };
        let started = std::time::Instant::now();
        let out = lab(&[
            "run",
            "--json",
            "--quiet",
            "--name",
            &name,
            file.to_str().unwrap(),
        ]);
        let secs = started.elapsed().as_secs_f64();
        let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!(
                    "{}: no JSON report ({e}):\n{}",
                    file.display(),
                    text(&out)
                ));
                continue;
            }
        };
        let expect = &report["expectations"][0];
        eprintln!(
            "{}: established {} (expected {}) in {secs:.1} s, exit {:?}",
            file.display(),
            report["established"],
            expect["expected"],
            out.status.code()
        );
        assert!(
            expect.is_object(),
            "{}: every lab states an expectation",
            file.display()
        );
        if report["expectations_met"] != true || out.status.code() != Some(0) {
            failures.push(format!(
                "{}: established {} expected {} (exit {:?}); why: {}",
                file.display(),
                report["established"],
                expect["expected"],
                out.status.code(),
                report["verdict"]
            ));
        }
        // Where no NAT path runs out, the clients' port walks never meet at the NAT: no SYN is
        // dropped for a clashing translation (each would cost a retransmission, and with few
        // SYN retries a connection).
        for view in report["nat"].as_array().into_iter().flatten() {
            let exhausted = view["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["exhausted"] == true);
            let insert_failed = &view["stats"]["insert_failed"];
            if !exhausted && insert_failed != 0 {
                failures.push(format!(
                    "{}: host {}: {insert_failed} conntrack insert failures with no path exhausted",
                    file.display(),
                    view["host"]
                ));
            }
        }
        assert_gone(&name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(before, host_snapshot(), "the initial namespace changed");
}
