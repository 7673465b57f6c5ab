//! `report.html` of `lab run --out DIR`: the whole run on one self-contained page, to share or
//! project after the run. The headline number and its cause, the lab's description, the
//! established-over-time plot with the wall marked, why (the verdict in numbers), the
//! expectations, the per-path NAT table, the topology drawn by lab itself, clients and servers,
//! and the same lab as commands. Inline CSS, inline SVG, no script and nothing fetched: it opens
//! from disk, offline, on a phone (tables scroll sideways) and prints. Every string from the lab
//! file or the kernel goes through [`escape`].

use std::fmt::Write as _;

use super::run::{RunReport, established_svg, failures, stopped};
use super::{count, escape};
use crate::lab::plan::Plan;
use crate::nat::view::{NatView, PathView};
use crate::workload::protocol::Failures;

const CSS: &str = r#"
:root{--ink:#1b1f24;--muted:#57606a;--line:#d0d7de;--panel:#f6f8fa;--accent:#1f5fbf;
--wall:#c62828;--wall-bg:#fdecea;--ok:#1b7f3b;--ok-bg:#e8f5ec;--warn:#9a5b00;--warn-bg:#fff4e0}
*{box-sizing:border-box}
html{font-size:18px;-webkit-text-size-adjust:100%}
body{margin:0;color:var(--ink);background:#fff;line-height:1.45;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","DejaVu Sans",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:1.5rem 1.25rem 3rem}
h1{font-size:2rem;line-height:1.15;margin:.1rem 0 .4rem}
h2{font-size:1.35rem;margin:2.2rem 0 .7rem;padding-bottom:.3rem;border-bottom:2px solid var(--line)}
.kicker{margin:0;color:var(--muted);font-size:.8rem;letter-spacing:.08em;text-transform:uppercase}
.description p{margin:.3rem 0;color:var(--muted);max-width:62rem}
.headline{margin:1.2rem 0 0;padding:1rem 1.4rem 1.1rem;border-radius:.6rem;border-left:.6rem solid}
.headline.wall{background:var(--wall-bg);border-color:var(--wall)}
.headline.ok{background:var(--ok-bg);border-color:var(--ok)}
.headline.short{background:var(--warn-bg);border-color:var(--warn)}
.headline .count{margin:0;font-size:1.5rem;line-height:1.2}
.headline .count strong{font-size:clamp(2.6rem,8vw,4.6rem);font-weight:800;letter-spacing:-.02em;
font-variant-numeric:tabular-nums}
.headline .cause{margin:.2rem 0 0;font-size:1.6rem;font-weight:700}
.headline.wall .cause{color:var(--wall)}.headline.ok .cause{color:var(--ok)}
.headline.short .cause{color:var(--warn)}
.headline .detail{margin:.3rem 0 0;font-size:1.05rem}
.badge{display:inline-block;margin-top:.7rem;padding:.15rem .7rem;border-radius:1rem;font-weight:700;
font-size:.95rem;color:#fff;background:var(--muted)}
.badge.met{background:var(--ok)}.badge.unmet{background:var(--wall)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(8rem,1fr));gap:.7rem;margin:1rem 0 0;
padding:0;list-style:none}
.cards li{background:#fff;border:1px solid var(--line);border-radius:.5rem;padding:.5rem .8rem}
.cards b{display:block;font-size:1.55rem;font-variant-numeric:tabular-nums}
.cards span{color:var(--muted);font-size:.85rem}
figure{margin:0}
figure svg{display:block;width:100%;height:auto;margin:0 auto}
figcaption{color:var(--muted);font-size:.85rem;margin-top:.3rem}
ul.why{padding-left:1.2rem}ul.why li{margin:.25rem 0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;min-width:min(100%,40rem);font-variant-numeric:tabular-nums;font-size:.92rem;
margin-bottom:1rem}
th,td{padding:.38rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;
vertical-align:top}
th{background:var(--panel);font-weight:600}
tr.group th{background:#fff;color:var(--accent);padding-top:.8rem;white-space:normal}
td.n,th.n{text-align:right}
tr.full td{color:var(--wall);font-weight:700}
td.met{color:var(--ok);font-weight:700}td.unmet{color:var(--wall);font-weight:700}
p.note{color:var(--muted);font-size:.9rem;margin:.4rem 0 1rem}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace}
pre{background:var(--panel);padding:.8rem 1rem;border-radius:.5rem;font-size:.75rem;line-height:1.35;
overflow:auto;max-height:34rem}
details summary{cursor:pointer;color:var(--accent);font-weight:600;margin-bottom:.5rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
footer{margin-top:2.5rem;color:var(--muted);font-size:.8rem}
@media (max-width:640px){html{font-size:16px}main{padding:1rem .8rem 2rem}h1{font-size:1.5rem}
dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.4rem}
figure{overflow-x:auto;-webkit-overflow-scrolling:touch}figure svg{min-width:560px}}
@media print{html{font-size:10.5pt}main{max-width:none;padding:0}
.headline,.badge,th,.cards li,.topology{-webkit-print-color-adjust:exact;print-color-adjust:exact}
h2{break-after:avoid}figure,table,tr,.headline{break-inside:avoid}
pre{max-height:none;overflow:visible;white-space:pre-wrap;font-size:8pt}
.scroll{overflow:visible}details summary{display:none}}
"#;

/// What stopped the count, for the headline: its CSS class and words.
fn cause(r: &RunReport) -> (&'static str, String, Option<String>) {
    let full: Vec<&PathView> = r
        .nat
        .iter()
        .flat_map(|v| v.paths.iter().filter(|p| p.exhausted))
        .collect();
    if let Some(p) = full.first() {
        let detail = if full.len() == 1 {
            format!(
                "NAT path {} → {}: all {} of its source ports in use, every further SYN dropped",
                source(p),
                p.dst,
                count(u64::from(p.capacity))
            )
        } else {
            format!(
                "{} NAT paths full: every further SYN on them dropped",
                full.len()
            )
        };
        return ("wall", "the NAT's wall".into(), Some(detail));
    }
    if r.established == r.asked && r.asked > 0 {
        return ("ok", "every connection established".into(), None);
    }
    if r.failed.no_local_port > 0 {
        return (
            "short",
            "the containers ran out of local ports".into(),
            Some("ip_local_port_range, inside each container: no NAT involved".into()),
        );
    }
    (
        "short",
        "short of what was asked".into(),
        r.verdict.first().cloned(),
    )
}

/// A path's source: the translated address, and the VM's block where the path is one VM's.
fn source(p: &PathView) -> String {
    match p.vm_ports {
        Some(b) => format!("{} ports {}-{}", p.translated, b.first, b.last),
        None => p.translated.to_string(),
    }
}

fn num(n: u64) -> String {
    format!(r#"<td class="n">{}</td>"#, count(n))
}

fn cell(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

fn description(s: &mut String, plan: &Plan) {
    let paragraphs: Vec<String> = plan
        .description
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    if paragraphs.is_empty() {
        return;
    }
    s.push_str(r#"<div class="description">"#);
    for p in paragraphs {
        let _ = write!(s, "<p>{}</p>", escape(&p));
    }
    s.push_str("</div>\n");
}

fn headline(s: &mut String, r: &RunReport) {
    let (class, words, detail) = cause(r);
    let _ = writeln!(
        s,
        r#"<section class="headline {class}" id="verdict"><p class="count"><strong id="established">{}</strong> of <span id="asked">{}</span> connections established</p><p class="cause">{}</p>"#,
        count(r.established),
        count(r.asked),
        escape(&words)
    );
    if let Some(d) = detail {
        let _ = writeln!(s, r#"<p class="detail">{}</p>"#, escape(&d));
    }
    let badge = match r.expectations_met {
        Some(true) => ("met", "expectations met"),
        Some(false) => ("unmet", "expectations NOT met"),
        None => ("none", "no expectations"),
    };
    let _ = writeln!(s, r#"<span class="badge {}">{}</span>"#, badge.0, badge.1);
    let full: usize = r
        .nat
        .iter()
        .map(|v| v.paths.iter().filter(|p| p.exhausted).count())
        .sum();
    let paths: usize = r.nat.iter().map(|v| v.paths.len()).sum();
    let failed = r.failed.total();
    let mut cards = vec![
        (count(failed), failed_words(&r.failed)),
        (
            count(r.predicted_established),
            "lab check predicted".to_owned(),
        ),
    ];
    if paths > 0 {
        cards.push((format!("{full} of {paths}"), "NAT paths full".to_owned()));
    }
    cards.push((
        format!("{:.1} s", r.outcome.settle_ms as f64 / 1000.0),
        "to settle".to_owned(),
    ));
    cards.push((count(r.outcome.peak_rate), "peak connections/s".to_owned()));
    s.push_str(r#"<ul class="cards">"#);
    for (value, what) in cards {
        let _ = write!(
            s,
            "<li><b>{}</b><span>{}</span></li>",
            escape(&value),
            escape(&what)
        );
    }
    s.push_str("</ul></section>\n");
}

/// The failed card's words: the cause alone when there is one, else each with its count.
fn failed_words(f: &Failures) -> String {
    let causes = [
        f.no_local_port,
        f.timed_out,
        f.refused,
        f.reset,
        f.unreachable,
        f.other,
    ];
    match causes.iter().filter(|&&n| n > 0).count() {
        0 => "failed".to_owned(),
        1 => format!(
            "failed: {}",
            failures(f)
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == ',')
                .trim()
        ),
        _ => format!("failed: {}", failures(f)),
    }
}

fn plot(s: &mut String, r: &RunReport, groups: &[String]) {
    let _ = writeln!(
        s,
        r#"<section id="plot"><h2>Established connections over time</h2><figure>{}<figcaption>One line per client group{}; the red line is the wall the prediction puts the run at, dashed lines a full NAT path and what was asked.</figcaption></figure></section>"#,
        established_svg(r, groups),
        if groups.len() > 1 {
            " and their total"
        } else {
            ""
        }
    );
}

fn why(s: &mut String, r: &RunReport) {
    s.push_str("<section id=\"why\"><h2>Why</h2><ul class=\"why\">");
    for line in &r.verdict {
        let _ = write!(s, "<li>{}</li>", escape(line));
    }
    s.push_str("</ul>\n");
    s.push_str(r#"<h2 id="expectations">Expectations</h2>"#);
    if r.expectations.is_empty() {
        s.push_str(
            r#"<p class="note">No expectations: the lab file has no <code>[expect]</code> table, so nothing was checked.</p>"#,
        );
    } else {
        s.push_str(
            r#"<div class="scroll"><table><thead><tr><th>what</th><th class="n">expected</th><th class="n">got</th><th>result</th></tr></thead><tbody>"#,
        );
        for c in &r.expectations {
            let (class, word) = if c.met {
                ("met", "met")
            } else {
                ("unmet", "NOT MET")
            };
            let _ = write!(
                s,
                r#"<tr>{}<td class="n">{}</td>{}<td class="{class}">{word}</td></tr>"#,
                cell(&c.what),
                escape(&c.expected),
                num(c.actual)
            );
        }
        s.push_str("</tbody></table></div>");
    }
    s.push_str("</section>\n");
}

fn nat_table(s: &mut String, r: &RunReport) {
    s.push_str(r#"<section id="nat"><h2>NAT paths, from the kernel's conntrack table</h2>"#);
    if r.nat.is_empty() {
        s.push_str(r#"<p class="note">No host of this lab translates: no NAT path.</p></section>"#);
        return;
    }
    s.push_str(
        r#"<p class="note">A NAT path is (translated source address, destination address and port): each has one pool of source ports, whatever the number of containers behind it.</p>"#,
    );
    s.push_str(
        r#"<div class="scroll"><table class="nat"><thead><tr><th>path: source → destination</th><th class="n">ports in use</th><th class="n">of</th><th class="n">predicted</th><th>state</th></tr></thead><tbody>"#,
    );
    for v in &r.nat {
        let _ = write!(
            s,
            r#"<tr class="group"><th colspan="5">{}: nat {}</th></tr>"#,
            escape(&crate::nat::form::place(&v.host, &v.network)),
            escape(&v.nat.to_string())
        );
        if v.paths.is_empty() {
            s.push_str(r#"<tr><td colspan="5">no translated TCP connections</td></tr>"#);
        }
        for p in &v.paths {
            let _ = write!(
                s,
                r#"<tr class="{}">{}{}{}{}{}</tr>"#,
                if p.exhausted { "full" } else { "path" },
                cell(&format!("{} → {}", source(p), p.dst)),
                num(p.ports_used),
                num(u64::from(p.capacity)),
                p.predicted
                    .map_or_else(|| r#"<td class="n">-</td>"#.to_owned(), num),
                cell(if p.exhausted {
                    "exhausted"
                } else {
                    "room left"
                })
            );
        }
    }
    s.push_str("</tbody></table></div>\n");
    for v in &r.nat {
        kernel_notes(s, v);
    }
    s.push_str("</section>\n");
}

/// Under the table: the kernel's counters of a host, and what only some labs show (a pool's
/// choice per container, the 4-tuple proof).
fn kernel_notes(s: &mut String, v: &NatView) {
    let place = crate::nat::form::place(&v.host, &v.network);
    let _ = write!(
        s,
        r#"<p class="note">{}: conntrack holds {} entries (each namespace may hold up to {}); insert_failed {}, drop {}{}</p>"#,
        escape(&place),
        count(v.entries),
        count(u64::from(v.max)),
        count(v.stats.insert_failed),
        count(v.stats.drop),
        if v.stats.insert_failed > 0 {
            ": SYNs the NAT could not give a free port. The client gets no error: it retransmits, then times out."
        } else {
            ""
        }
    );
    if v.nat.is_pool() && !v.containers.is_empty() {
        s.push_str(
            r#"<div class="scroll"><table><thead><tr><th>container</th><th>to</th><th>left as</th><th>predicted</th></tr></thead><tbody>"#,
        );
        for c in &v.containers {
            let predicted = c.predicted.map_or("-".into(), |p| p.to_string());
            let predicted = if c.mismatch {
                format!("{predicted} (MISMATCH: please report this as a bug)")
            } else {
                predicted
            };
            let _ = write!(
                s,
                "<tr>{}{}{}{}</tr>",
                cell(&format!("{} {}", c.container, c.address)),
                cell(&c.dst.to_string()),
                cell(&super::left_as(c)),
                cell(&predicted)
            );
        }
        s.push_str("</tbody></table></div>");
    }
    if let Some(sp) = &v.shared_port {
        s.push_str(
            r#"<p class="note">One translated port, several destinations at once (the 4-tuple proof):</p><pre>"#,
        );
        for t in sp.entries.iter().take(4) {
            let _ = writeln!(
                s,
                "{}",
                escape(&format!("{} -> {} -> {}", t.from, t.translated, t.to))
            );
        }
        s.push_str("</pre>");
    }
}

fn topology(s: &mut String, plan: &Plan) {
    let _ = writeln!(
        s,
        r#"<section id="topology"><h2>Topology</h2><figure>{}<figcaption>Drawn by lab from the lab file: LANs, hosts with their servers, Docker networks with their NAT rule and containers.</figcaption></figure></section>"#,
        super::drawing::svg(plan)
    );
}

fn workload(s: &mut String, r: &RunReport) {
    let last = &r.outcome.last;
    s.push_str(r#"<section id="workload"><h2>Clients and servers</h2>"#);
    s.push_str(
        r#"<div class="scroll"><table><thead><tr><th>client</th><th>container</th><th>target</th><th class="n">asked</th><th class="n">established</th><th>failed</th></tr></thead><tbody>"#,
    );
    for c in &last.clients {
        let failed = if c.program.is_some() {
            "not visible from outside (your program: see its log)".to_owned()
        } else {
            failures(&c.failed)
        };
        let _ = write!(
            s,
            "<tr>{}{}{}{}{}{}</tr>",
            cell(&c.group),
            cell(&c.container),
            cell(&c.target.to_string()),
            num(c.asked),
            num(c.established),
            cell(&failed)
        );
    }
    s.push_str("</tbody></table></div>");
    if !last.servers.is_empty() {
        s.push_str(
            r#"<div class="scroll"><table><thead><tr><th>server</th><th>listens on</th><th class="n">connections</th><th class="n">processes</th><th>per local address</th></tr></thead><tbody>"#,
        );
        for sv in &last.servers {
            let local: Vec<String> = sv
                .by_local_address
                .iter()
                .map(|(ip, n)| format!("{ip}: {}", count(*n)))
                .collect();
            let _ = write!(
                s,
                "<tr>{}{}{}{}{}</tr>",
                cell(&sv.server),
                cell(&format!("{}:{}", sv.host, sv.port)),
                num(sv.established),
                num(sv.processes as u64),
                cell(&local.join(", "))
            );
        }
        s.push_str("</tbody></table></div>");
    }
    let o = &r.outcome;
    s.push_str(r#"<h2>About this run</h2><dl class="facts">"#);
    let mut facts = vec![
        (
            "settled",
            format!(
                "{:.1} s after the clients started ({})",
                o.settle_ms as f64 / 1000.0,
                stopped(o)
            ),
        ),
        ("peak rate", format!("{} connections/s", count(o.peak_rate))),
        ("client source ports", o.client_method.clone()),
        (
            "memory",
            format!(
                "{} agent processes and lab: {:.1} MiB proportional",
                last.agents,
                (last.agents_pss_bytes + r.lab_pss_bytes) as f64 / 1_048_576.0
            ),
        ),
    ];
    for l in &r.raised {
        facts.push((
            "raised for the run",
            format!(
                "{} from {} to {}, restored at teardown",
                l.limit,
                count(l.before),
                count(l.set)
            ),
        ));
    }
    if let Some(h) = &o.hold {
        facts.push((
            "held",
            format!(
                "{:.1} s: {} open at the start, {} at the end, {} lost",
                h.held_ms as f64 / 1000.0,
                count(h.established_at_start),
                count(h.established_at_end),
                count(h.lost)
            ),
        ));
    }
    for (what, value) in facts {
        let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", escape(what), escape(&value));
    }
    s.push_str("</dl></section>\n");
}

fn commands(s: &mut String, plan: &Plan) {
    let script = super::commands::script(plan);
    let _ = writeln!(
        s,
        r#"<section id="commands"><h2>The same lab by hand</h2><p class="note">What <code>lab up</code> builds over netlink, as <code>ip</code>, <code>nft</code> and <code>sysctl</code> commands to type as root (<code>lab show --commands</code> prints the same).</p><details open><summary>{} lines of shell</summary><pre>{}</pre></details></section>"#,
        script.lines().count(),
        escape(&script)
    );
}

/// The page: one HTML document, everything inline.
pub fn page(r: &RunReport, plan: &Plan, groups: &[String]) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let title = format!(
        "lab {}: {} of {} connections established",
        r.lab,
        count(r.established),
        count(r.asked)
    );
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"lab {}\">\n<title>{}</title>\n<style>{CSS}</style>\n\
         </head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    );
    let _ = writeln!(
        s,
        r#"<header><p class="kicker">lab run report</p><h1>lab {}</h1>"#,
        escape(&r.lab)
    );
    description(&mut s, plan);
    s.push_str("</header>\n");
    headline(&mut s, r);
    plot(&mut s, r, groups);
    why(&mut s, r);
    nat_table(&mut s, r);
    topology(&mut s, plan);
    workload(&mut s, r);
    commands(&mut s, plan);
    s.push_str(
        "<footer>Written by <code>lab run --out</code>. This page is self-contained: it loads \
         nothing and needs no network. report.json beside it has every number.</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::HostId;
    use crate::lab::{LoadOptions, Source, load};
    use crate::nat::form::HostNat;
    use crate::workload::outcome::{ClientResult, Outcome, Sample, Snapshot, StopReason};

    /// Lab 07 with its description replaced.
    fn small_ports(description: &str) -> Plan {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/labs/07-small-ports.toml"
        ))
        .expect("lab file");
        let start = text.find("description = \"\"\"").expect("description");
        let end = start + 17 + text[start + 17..].find("\"\"\"").expect("its end") + 3;
        let text = format!(
            "{}description = '''{description}'''{}",
            &text[..start],
            &text[end..]
        );
        load(&Source::new("07", text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .expect("valid")
            .plan
    }

    /// What a run of lab 07 reports: 300 of 500, its one NAT path full.
    fn report(plan: &Plan) -> RunReport {
        let timed_out = Failures {
            timed_out: 100,
            ..Failures::default()
        };
        let client = |c: &str, established| ClientResult {
            group: "load".into(),
            container: c.into(),
            target: "192.168.49.5:9000".parse().expect("address"),
            asked: 250,
            established,
            failed: Failures {
                timed_out: 250 - established,
                ..Failures::default()
            },
            processes: 1,
            detail: None,
            program: None,
            runs_as: None,
        };
        let outcome = Outcome {
            stop: StopReason::Settled,
            last: Snapshot {
                elapsed_ms: 5000,
                clients: vec![client("c1", 151), client("c2", 149)],
                servers: vec![],
                established: 300,
                asked: 500,
                failed: Failures {
                    timed_out: 200,
                    ..timed_out
                },
                in_flight: 0,
                groups: vec![("load".into(), 300, 500)],
                agents_rss_bytes: 0,
                agents_pss_bytes: 0,
                agents: 3,
                dead_agents: vec![],
            },
            settle_ms: 3200,
            peak_rate: 300,
            series: [(0, 0), (500, 280), (1000, 300), (4000, 300)]
                .iter()
                .map(|&(t_ms, n)| Sample {
                    t_ms,
                    groups: vec![n],
                    total: n,
                })
                .collect(),
            client_method: "the kernel's (connect)".into(),
            max_open_files: 1024,
            hold: None,
        };
        let host = plan.host(HostId(0));
        let docker = host.docker.as_ref().expect("docker");
        let nat = NatView {
            host: host.name.to_string(),
            network: "bridge".into(),
            nat: HostNat::of(host, &docker.default_bridge),
            entries: 300,
            max: 262_144,
            paths: vec![PathView {
                translated: "192.168.49.6".parse().expect("address"),
                dst: "192.168.49.5:9000".parse().expect("address"),
                vm_ports: None,
                ports_used: 300,
                capacity: 300,
                exhausted: true,
                predicted: Some(300),
            }],
            containers: vec![],
            stats: crate::nat::conntrack::Stats {
                insert_failed: 612,
                drop: 612,
                ..Default::default()
            },
            samples: vec![],
            shared_port: None,
            unallocated: 0,
        };
        let prediction = crate::nat::paths::predict_lab(plan);
        RunReport::new(plan, outcome, vec![nat], prediction, vec![])
    }

    fn page_of(description: &str) -> String {
        let plan = small_ports(description);
        page(&report(&plan), &plan, &["load".to_owned()])
    }

    #[test]
    fn a_description_with_markup_is_text() {
        let html = page_of(r#"<script>alert("owned")</script> & <img src=x onerror=alert(1)>"#);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; &amp; &lt;img src=x \
                 onerror=alert(1)&gt;"
            ),
            "{html}"
        );
    }

    #[test]
    fn holds_the_numbers_of_the_run() {
        let html = page_of("The wall in miniature.");
        for needle in [
            "<!DOCTYPE html>",
            r#"<meta name="viewport""#,
            "<p>The wall in miniature.</p>",
            r#"<strong id="established">300</strong> of <span id="asked">500</span>"#,
            "the NAT&#39;s wall",
            "expectations met",
            // The NAT table's row: the path, 300 ports in use of 300, predicted 300.
            r#"<td>192.168.49.6 → 192.168.49.5:9000</td><td class="n">300</td><td class="n">300</td><td class="n">300</td><td>exhausted</td>"#,
            "insert_failed 612",
            // The expectation: 300 expected, 300 got.
            r#"<td>established</td><td class="n">300</td><td class="n">300</td><td class="met">met</td>"#,
            // The plot, with the wall marked.
            "the NAT&#39;s wall 300",
            // The topology and the commands.
            r#"class="topology""#,
            "ip netns add small-ports-lan",
        ] {
            assert!(html.contains(needle), "{needle} missing:\n{html}");
        }
    }

    #[test]
    fn the_failed_card_names_its_causes() {
        let one = Failures {
            timed_out: 10_488,
            ..Failures::default()
        };
        assert_eq!(failed_words(&one), "failed: timed out");
        let two = Failures {
            no_local_port: 1,
            refused: 2_000,
            ..Failures::default()
        };
        assert_eq!(failed_words(&two), "failed: 1 no local port, 2,000 refused");
        assert_eq!(failed_words(&Failures::default()), "failed");
    }

    #[test]
    fn loads_nothing() {
        let html = page_of("plain");
        for bad in [
            "<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href=",
        ] {
            assert!(!html.contains(bad), "{bad} in the page:\n{html}");
        }
    }
}
