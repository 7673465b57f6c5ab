//! The topology as a picture drawn by lab itself, in plain SVG (no Graphviz needed, so a run's
//! report.html always has it): each LAN a bar with its hosts hanging below it in columns; in a
//! host's box its addresses and servers, then each Docker network (its bridge and NAT rule)
//! holding its containers. A network of many containers shows the first few and counts the
//! rest.

use std::fmt::Write as _;

use super::escape;
use crate::lab::plan::{HostId, NetworkId, Plan};
use crate::nat::form::{HostNat, NatKind};

/// Containers drawn one by one in a network's box; past this, the first few and a count.
const CONTAINERS_SHOWN: usize = 6;
const COLUMN: f64 = 300.0;
const GAP: f64 = 24.0;
const MARGIN: f64 = 16.0;
const LINE: f64 = 19.0;
const PAD: f64 = 10.0;
const BAR: f64 = 34.0;
/// Characters of the 13 px sans-serif font that fit on a line of a host's box, and of a
/// network's box inside it (bold text is wider: two fewer), to wrap long lines.
const HOST_CHARS: usize = 38;
const NET_CHARS: usize = 35;

/// One text line of a box: its text and its CSS class (`t` title, `n` NAT rule, `s` server,
/// `m` muted).
type Text = (String, &'static str);

fn lines_height(lines: &[Text]) -> f64 {
    LINE * lines.len() as f64
}

/// A Docker network: its lines, then its containers (one line each).
struct Network {
    lines: Vec<Text>,
    containers: Vec<Text>,
}

/// Height of one container's box.
const CONTAINER: f64 = 26.0;

impl Network {
    fn height(&self) -> f64 {
        let n = self.containers.len() as f64;
        let containers = if n > 0.0 {
            4.0 + n * (CONTAINER + 6.0) - 6.0
        } else {
            0.0
        };
        PAD + lines_height(&self.lines) + containers + PAD
    }
}

/// What hangs below a LAN's bar in one column: a host's box, holding its networks.
struct Column {
    lines: Vec<Text>,
    networks: Vec<Network>,
}

impl Column {
    fn height(&self) -> f64 {
        PAD + lines_height(&self.lines)
            + self.networks.iter().map(|n| 6.0 + n.height()).sum::<f64>()
            + PAD
    }
}

/// Splits `text` at spaces into lines of at most `width` characters (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn wrapped(text: &str, class: &'static str, width: usize) -> Vec<Text> {
    wrap(text, width).into_iter().map(|l| (l, class)).collect()
}

fn column(plan: &Plan, id: HostId) -> Column {
    let host = plan.host(id);
    let mut lines: Vec<Text> = vec![(format!("host {}", host.name), "t")];
    let addrs: Vec<String> = host.addresses.iter().map(ToString::to_string).collect();
    lines.extend(wrapped(
        &format!("{} {}", host.nic, addrs.join(", ")),
        "",
        HOST_CHARS,
    ));
    for s in plan.servers.iter().filter(|s| s.host == id) {
        let what = if s.command.is_some() {
            " (your program)"
        } else {
            ""
        };
        lines.extend(wrapped(
            &format!("server {} listens on :{}{what}", s.name, s.port),
            "s",
            HOST_CHARS - 2,
        ));
    }
    let mut networks = Vec::new();
    for (network, d) in host.docker.iter().flat_map(|d| d.networks_with_ids()) {
        let mut net: Vec<Text> = vec![(
            format!("{} {}/{}", d.bridge, d.gateway, d.subnet.prefix_len()),
            "t",
        )];
        if network != NetworkId::DEFAULT_BRIDGE {
            net.push((format!("network {}", d.name), "m"));
        }
        let nat = HostNat::of(host, d);
        let (class, width) = if matches!(nat.kind(), NatKind::None) {
            ("m", NET_CHARS)
        } else {
            ("n", NET_CHARS - 2)
        };
        net.extend(wrapped(&format!("nat: {nat}"), class, width));
        let all: Vec<_> = plan.containers_on(id, network).collect();
        let shown = if all.len() > CONTAINERS_SHOWN {
            CONTAINERS_SHOWN - 1
        } else {
            all.len()
        };
        let mut containers: Vec<Text> = all[..shown]
            .iter()
            .map(|c| (format!("{}  {}", c.name, c.address), ""))
            .collect();
        if let (Some(first), Some(last)) = (all.get(shown), all.last())
            && all.len() > shown
        {
            containers.push((
                format!(
                    "… {} more: {} to {}",
                    all.len() - shown,
                    first.name,
                    last.name
                ),
                "m",
            ));
        }
        networks.push(Network {
            lines: net,
            containers,
        });
    }
    Column { lines, networks }
}

/// Lines of text from (x, y), the top of the first line's box.
fn draw_lines(s: &mut String, lines: &[Text], x: f64, y: f64) {
    for (i, (text, class)) in lines.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text class="{class}" x="{x:.1}" y="{:.1}">{}</text>"#,
            y + 14.0 + LINE * i as f64,
            escape(text)
        );
    }
}

fn rect(s: &mut String, class: &str, x: f64, y: f64, w: f64, h: f64) {
    let _ = writeln!(
        s,
        r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6"/>"#
    );
}

fn draw_column(s: &mut String, col: &Column, x: f64, top: f64) {
    rect(s, "host", x, top, COLUMN, col.height());
    draw_lines(s, &col.lines, x + PAD, top + PAD);
    let mut y = top + PAD + lines_height(&col.lines);
    for net in &col.networks {
        y += 6.0;
        let (nx, nw) = (x + PAD, COLUMN - 2.0 * PAD);
        rect(s, "net", nx, y, nw, net.height());
        draw_lines(s, &net.lines, nx + PAD, y + PAD);
        let mut cy = y + PAD + lines_height(&net.lines) + 4.0;
        for c in &net.containers {
            rect(s, "ctr", nx + PAD, cy, nw - 2.0 * PAD, CONTAINER);
            draw_lines(s, std::slice::from_ref(c), nx + 2.0 * PAD, cy + 3.0);
            cy += CONTAINER + 6.0;
        }
        y += net.height();
    }
}

/// The lab's topology as one SVG element.
pub fn svg(plan: &Plan) -> String {
    let mut body = String::new();
    let mut width: f64 = 2.0 * MARGIN + COLUMN;
    let mut y = MARGIN;
    for (li, lan) in plan.lans.iter().enumerate() {
        let columns: Vec<Column> = (0..plan.hosts.len())
            .filter(|&h| plan.hosts[h].lan.0 == li)
            .map(|h| column(plan, HostId(h)))
            .collect();
        let n = columns.len().max(1) as f64;
        let band = n * COLUMN + (n - 1.0) * GAP;
        width = width.max(band + 2.0 * MARGIN);
        let _ = writeln!(
            body,
            r#"<rect class="lan" x="{MARGIN}" y="{y:.1}" width="{band:.1}" height="{BAR}" rx="{:.1}"/>"#,
            BAR / 2.0
        );
        let _ = writeln!(
            body,
            r#"<text class="lan" x="{:.1}" y="{:.1}">LAN {}  {}</text>"#,
            MARGIN + 16.0,
            y + BAR / 2.0 + 5.0,
            escape(lan.name.as_str()),
            lan.subnet
        );
        let top = y + BAR + GAP;
        let mut bottom = top;
        for (ci, col) in columns.iter().enumerate() {
            let x = MARGIN + ci as f64 * (COLUMN + GAP);
            let mid = x + COLUMN / 2.0;
            let _ = writeln!(
                body,
                r#"<line class="wire" x1="{mid:.1}" y1="{:.1}" x2="{mid:.1}" y2="{top:.1}"/>"#,
                y + BAR
            );
            draw_column(&mut body, col, x, top);
            bottom = bottom.max(top + col.height());
        }
        y = bottom + 2.0 * GAP;
    }
    let height = y - 2.0 * GAP + MARGIN;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="{width:.0}" height="{height:.0}" style="max-width:{:.0}px" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="13" role="img" aria-label="topology of lab {}">"#,
        // A page may scale it up a little (to project it), not to a poster.
        width * 1.3,
        escape(plan.name.as_str())
    );
    // Scoped to this drawing: an SVG's <style> inside an HTML page applies to the whole page.
    s.push_str(
        "<style>\
         .topology rect.lan{fill:#1f5fbf}.topology text.lan{fill:#fff;font-weight:bold;font-size:14px}\
         .topology rect.host{fill:#eef3fb;stroke:#1f5fbf;stroke-width:1.5}\
         .topology rect.net{fill:#fff;stroke:#8c959f;stroke-dasharray:5,3}\
         .topology rect.ctr{fill:#f6f8fa;stroke:#8c959f}\
         .topology line.wire{stroke:#1f5fbf;stroke-width:2}\
         .topology text{fill:#1b1f24}.topology text.t{font-weight:bold}\
         .topology text.n{fill:#b3261e;font-weight:bold}\
         .topology text.s{fill:#1b7f3b;font-weight:bold}.topology text.m{fill:#57606a}\
         </style>\n",
    );
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};

    fn plan(file: &str) -> Plan {
        let text = std::fs::read_to_string(format!("{}/labs/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("lab file");
        load(&Source::new(file, text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .expect("valid")
            .plan
    }

    /// The drawing parsed as XML: the text of its `<text>` elements, one per line.
    fn texts(svg: &str) -> String {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("longword x", 3), ["longword", "x"]);
    }

    #[test]
    fn draws_every_host_network_and_container() {
        let svg = svg(&plan("02-cross-host.toml"));
        let doc = texts(&svg);
        for needle in [
            "LAN lan  192.168.49.0/24",
            "host client-host",
            "host server-host",
            "server srv listens on :9000",
            "docker0 172.17.0.1/16",
            "nat: masquerade to 192.168.49.6",
            "c1  172.17.0.2",
            "c3  172.17.0.4",
        ] {
            assert!(doc.contains(needle), "{needle} missing:\n{svg}");
        }
    }

    #[test]
    fn abridges_many_containers() {
        let svg = svg(&plan("15-azure-lb-outbound.toml"));
        assert!(svg.contains("vm5  "), "{svg}");
        assert!(!svg.contains("vm6  "), "{svg}");
        assert!(svg.contains("… 55 more: vm6 to vm60"), "{svg}");
    }
}
