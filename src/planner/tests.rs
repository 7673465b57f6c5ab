//! The planner against the measured labs (labs/: 64,512 / 75,000 / 150,000 / 1,000,000): each
//! plan comes out as the lab, or the test says why it differs; and for every N the written
//! file predicts exactly N with no path above its planned fill.

use std::net::Ipv4Addr;
use std::num::{NonZeroU32, NonZeroU64};

use super::*;
use crate::lab::capacity::Capacity;
use crate::lab::limits::GlobalLimit;
use crate::lab::{LoadOptions, Source, load};
use crate::nat::paths::predict_lab;

/// This machine kind: 262,144 conntrack entries, 20,000 files per process, 2.47M files of
/// which 10k in use, 23 GiB available.
fn here() -> Machine {
    Machine {
        conntrack_max: 262_144,
        open_files_per_process: 20_000,
        file_max: 2_466_000,
        files_in_use: 10_000,
        memory_available: 23 << 30,
    }
}

fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

fn request(n: u64, nat: NatChoice) -> Request {
    let mut r = Request::new(NonZeroU64::new(n).expect("non-zero"));
    r.nat = nat;
    r
}

fn planned(r: &Request) -> Layout {
    plan(r, &here(), "planned").unwrap_or_else(|e| panic!("{}: {e:#}", r.command_line()))
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 49, last)
}

/// A lab file's plan.
fn lab_plan(file: &str) -> crate::lab::Plan {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("lab file");
    let source = Source::new(file, text);
    load(&source, &LoadOptions::default())
        .map(|l| l.plan)
        .unwrap_or_else(|d| panic!("{file}: {d:?}"))
}

/// Connections per NAT path of a lab (its prediction), sorted.
fn path_loads(plan: &crate::lab::Plan) -> Vec<u64> {
    let mut loads: Vec<u64> = predict_lab(plan)
        .iter()
        .flat_map(|h| h.prediction.paths.iter().map(|p| p.wanted))
        .collect();
    loads.sort_unstable();
    loads
}

fn layout_loads(l: &Layout) -> Vec<u64> {
    let mut loads: Vec<u64> = l.paths.iter().map(|p| p.connections).collect();
    loads.sort_unstable();
    loads
}

#[test]
fn the_wall_one_path_holds_what_lab_02_shows_less_a_sixteenth() {
    // Lab 02: one client host, one server address, one path of 64,512: the wall. The plan
    // keeps a 16th of a path free, so one path carries 60,480 ...
    let l = planned(&request(60_480, NatChoice::Masquerade));
    assert_eq!(l.server.addresses, [ip(5)], "lab 02's server address");
    assert_eq!(l.paths.len(), 1);
    assert_eq!(l.client_hosts.len(), 1);
    // ... and the wall's own count takes a second server address.
    let l = planned(&request(64_512, NatChoice::Masquerade));
    assert_eq!(l.server.addresses, [ip(5), ip(15)]);
    assert_eq!(layout_loads(&l), [21_504, 43_008]);
    assert_eq!(l.containers_per_host, 3, "64,512 / 28,232 local ports");
    assert!(l.decisions[1].contains("planned to carry at most 60480"));
    let nat = &l.limits[0];
    assert_eq!(
        (nat.name, nat.limit, nat.status),
        ("nf_nat source ports 1024-65535", 64_512, LimitStatus::Binds)
    );
}

#[test]
fn seventy_five_thousand_is_lab_03_with_one_address_fewer_or_exactly_lab_03() {
    // Lab 03: three containers of 25,000 to three server addresses. The plan needs two
    // addresses (50,000 and 25,000 on the paths); the same three containers.
    let l = planned(&request(75_000, NatChoice::Masquerade));
    assert_eq!(l.server.addresses.len(), 2);
    assert_eq!(l.containers_per_host, 3);
    assert_eq!(layout_loads(&l), [25_000, 50_000]);
    assert!(!l.local_ports.widened, "25,000 fit Docker's 28,232 ports");
    // Asked for lab 03's three addresses, it is lab 03 (which widens the containers' port
    // range only so that nothing but the NAT could limit them).
    let mut r = request(75_000, NatChoice::Masquerade);
    r.server_addresses = nz(3);
    let l = planned(&r);
    let lab = lab_plan("labs/03-more-server-addresses.toml");
    assert_eq!(layout_loads(&l), path_loads(&lab));
    assert_eq!(l.containers_per_host as usize, lab.containers.len());
}

#[test]
fn seventy_five_thousand_through_a_pool_is_lab_04_once_the_pool_has_three() {
    // The plan's pool has two addresses (two paths hold 75,000), and picks the server address
    // for which the hash splits the three containers 2:1, not 3:0.
    let l = planned(&request(75_000, NatChoice::SnatPool));
    assert_eq!(l.client_hosts[0].addresses.len(), 2);
    assert_eq!(layout_loads(&l), [25_000, 50_000]);
    assert!(
        l.decisions[2].contains("spreads its containers 2:1"),
        "{:?}",
        l.decisions
    );
    // Lab 04's pool of three and its server 192.168.49.5: 1:1:1, as the kernel did.
    let mut r = request(75_000, NatChoice::SnatPool);
    r.source_addresses = nz(3);
    let l = planned(&r);
    assert_eq!(l.server.addresses, [ip(5)]);
    let lab = lab_plan("labs/04-more-source-addresses.toml");
    assert_eq!(layout_loads(&l), path_loads(&lab));
    assert_eq!(layout_loads(&l), [25_000, 25_000, 25_000]);
}

#[test]
fn a_hundred_and_fifty_thousand_is_lab_05_with_its_two_by_two() {
    // Lab 05: six containers, two server addresses x a pool of two: four paths, at most two
    // containers on each. Asked for the same two by two, the plan finds a spread as good.
    let mut r = request(150_000, NatChoice::SnatPool);
    r.server_addresses = nz(2);
    r.source_addresses = nz(2);
    let l = planned(&r);
    assert_eq!(l.containers_per_host, 6);
    let lab = lab_plan("labs/05-both-fixes.toml");
    assert_eq!(layout_loads(&l), path_loads(&lab));
    assert_eq!(layout_loads(&l), [25_000, 25_000, 50_000, 50_000]);
    // On its own, the pool plan takes one server address and a pool of three (2:2:2), and
    // the masquerade plan three server addresses.
    let l = planned(&request(150_000, NatChoice::SnatPool));
    assert_eq!((l.server.addresses.len(), l.paths.len()), (1, 3));
    assert_eq!(layout_loads(&l), [50_000, 50_000, 50_000]);
    let l = planned(&request(150_000, NatChoice::Masquerade));
    assert_eq!(l.server.addresses.len(), 3);
    assert_eq!(layout_loads(&l), [50_000, 50_000, 50_000]);
}

#[test]
fn the_million_takes_four_hosts_here_and_is_the_million_lab_with_its_headroom() {
    // nf_conntrack_max 262,144 lets a host hold 250,000 (kernel.md section 6 measured 4 hosts
    // x 250,008); labs/million.toml keeps more room with five hosts of 200,000.
    let l = planned(&request(1_000_000, NatChoice::Masquerade));
    assert_eq!(l.client_hosts.len(), 4);
    assert!(l.client_hosts.iter().all(|h| h.connections == 250_000));
    assert_eq!(l.server.addresses.len(), 5);
    assert_eq!(l.containers_per_host, 9);
    assert_eq!(l.server.processes, 63);
    assert_eq!(l.capacity.conntrack_per_namespace, 250_000);
    let ct = &l.limits[2];
    assert_eq!(
        (ct.name, ct.status, ct.decides.as_str()),
        (
            "net.netfilter.nf_conntrack_max",
            LimitStatus::Binds,
            "4 client hosts"
        )
    );
    // With less conntrack room and the lab's ten containers and five addresses: the lab.
    let mut r = request(1_000_000, NatChoice::Masquerade);
    r.containers_per_host = nz(10);
    r.server_addresses = nz(5);
    let m = Machine {
        conntrack_max: 220_000,
        ..here()
    };
    let l = plan(&r, &m, "planned").expect("plans");
    let lab = lab_plan("labs/million.toml");
    assert_eq!(l.client_hosts.len(), 5);
    assert_eq!(layout_loads(&l), path_loads(&lab));
    assert_eq!(
        l.connections_per_container,
        write::Span {
            min: 20_000,
            max: 20_000
        }
    );
}

#[test]
fn every_plan_predicts_exactly_n_with_no_path_over_its_fill() {
    for nat in [NatChoice::Masquerade, NatChoice::SnatPool] {
        for n in [
            1, 7, 1_000, 28_232, 28_233, 60_480, 60_481, 129_999, 262_144, 500_001, 1_234_567,
        ] {
            let l = planned(&request(n, nat));
            assert_eq!(l.connections, n);
            let sum: u64 = l.paths.iter().map(|p| p.connections).sum();
            assert_eq!(sum, n, "{nat:?} {n}");
            assert!(l.paths.iter().all(|p| p.connections <= 60_480), "{n}");
            assert!(l.capacity.conntrack_per_namespace <= here().conntrack_usable());
            let c = &l.connections_per_container;
            assert!(c.max - c.min <= 1);
            assert!(c.max <= u64::from(DOCKER_LOCAL_PORTS));
        }
    }
}

#[test]
fn what_lab_check_estimates_of_the_written_file_is_the_plan() {
    let mut r = request(130_000, NatChoice::SnatPool);
    r.containers_per_host = nz(2);
    let m = Machine {
        conntrack_max: 100_000,
        ..here()
    };
    let l = plan(&r, &m, "planned").expect("plans");
    assert_eq!(l.client_hosts.len(), 2);
    let source = Source::new("p.toml", l.lab_file.clone());
    let lab = load(&source, &LoadOptions::default()).expect("loads").plan;
    let c = Capacity::estimate(&lab, &m.resources());
    assert_eq!(c.connections, 130_000);
    assert_eq!(c.open_files, l.capacity.open_files);
    assert_eq!(c.conntrack_per_namespace, 65_000);
    assert_eq!(
        lab.expect.established,
        Some(crate::lab::plan::CountRange::exact(130_000))
    );
    // Two containers of 32,500: past Docker's 28,232 ports, so the file widens them.
    assert!(l.local_ports.widened);
    assert!(
        l.lab_file
            .contains("\"net.ipv4.ip_local_port_range\" = \"1024 65535\"")
    );
    assert!(
        l.decisions
            .iter()
            .any(|d| d.contains("3 containers per host would not need it"))
    );
}

#[test]
fn files_short_of_room_are_raised_and_memory_short_is_a_problem() {
    let m = Machine {
        file_max: 1_000_000,
        ..here()
    };
    let l = plan(&request(500_000, NatChoice::Masquerade), &m, "p").expect("plans");
    assert_eq!(l.raise, [GlobalLimit::FileMax]);
    assert!(l.lab_file.contains("[machine]\nraise = [\"fs.file-max\"]"));
    assert_eq!(l.limits[4].status, LimitStatus::Raised);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let m = Machine {
        memory_available: 4 << 30,
        ..here()
    };
    let l = plan(&request(1_000_000, NatChoice::Masquerade), &m, "p").expect("plans");
    assert_eq!(l.limits[5].status, LimitStatus::Exceeds);
    assert!(l.problems.iter().any(|p| p.contains("kernel memory")));
}

#[test]
fn what_cannot_be_laid_out_is_refused_with_what_to_do() {
    let code = |r: &Request, m: &Machine| match search(r, m) {
        Ok(s) => panic!("planned {s:?}"),
        Err(e) => (crate::error::exit_code(&e), format!("{e:#}")),
    };
    let mut r = request(10_000, NatChoice::Masquerade);
    r.source_addresses = nz(2);
    let (c, why) = code(&r, &here());
    assert_eq!(c, crate::error::exit::INVALID);
    assert!(why.contains("--nat snat-pool"), "{why}");
    let mut r = request(10_000, NatChoice::Masquerade);
    r.server_addresses = nz(3);
    r.containers_per_host = nz(2);
    assert_eq!(code(&r, &here()).0, crate::error::exit::INVALID);
    let tiny = Machine {
        conntrack_max: 100,
        ..here()
    };
    let (c, why) = code(&request(1_000_000, NatChoice::Masquerade), &tiny);
    assert_eq!(c, crate::error::exit::UNSUPPORTED);
    assert!(why.contains("nf_conntrack_max"), "{why}");
}

#[test]
fn processes_are_the_workloads_own_count() {
    // A what-if limit of 5,000 files: a container of 25,000 needs 6 processes (4,936 each).
    let m = Machine {
        open_files_per_process: 5_000,
        ..here()
    };
    let l = plan(&request(150_000, NatChoice::Masquerade), &m, "p").expect("plans");
    assert_eq!(l.client_hosts[0].processes, 6 * 6);
    assert_eq!(l.server.processes, 38, "150,000 x 1.25 / 4,936");
    assert!(l.decisions[3].contains("6 client processes per container"));
}

#[test]
fn the_request_reads_back_as_its_command_line() {
    let mut r = request(150_000, NatChoice::SnatPool);
    r.server_addresses = nz(2);
    assert_eq!(
        r.command_line(),
        "lab plan --connections 150000 --nat snat-pool --server-addresses 2"
    );
}

// ---- cloud NAT profiles ---------------------------------------------------------------------

fn cloud_request(n: u64, nat: NatChoice, ports_per_vm: Option<u32>) -> Request {
    let mut r = request(n, nat);
    r.ports_per_vm = ports_per_vm.and_then(NonZeroU32::new);
    r
}

/// Per-VM blocks of the written file's prediction: (address, first port, last port, load).
fn blocks(l: &Layout) -> Vec<(Ipv4Addr, u16, u16, u64)> {
    l.paths
        .iter()
        .map(|p| {
            let b = p.vm_ports.expect("a VM's block");
            (p.source, b.first, b.last, p.connections)
        })
        .collect()
}

#[test]
fn aws_fills_a_gateway_with_addresses_to_55000_less_a_sixteenth() {
    // 55,000 per address and destination, planned to 51,563: one address holds 51,563 ...
    let l = planned(&request(51_563, NatChoice::AwsNatGateway));
    assert_eq!((l.path_capacity, l.path_fill), (55_000, 51_563));
    assert_eq!(l.client_hosts[0].addresses, [ip(101)]);
    assert_eq!(layout_loads(&l), [51_563]);
    // ... and one more takes a second address, not a second destination (addresses are the
    // gateway owner's fix; the split is the in-turn one, to one).
    let l = planned(&request(51_564, NatChoice::AwsNatGateway));
    assert_eq!(l.client_hosts[0].addresses, [ip(101), ip(102)]);
    assert_eq!(l.server.addresses, [ip(5)]);
    assert_eq!(layout_loads(&l), [25_782, 25_782]);
    assert!(
        l.lab_file
            .contains("nat = { profile = \"aws-nat-gateway\" }")
    );
    let cloud = l.cloud.as_ref().expect("a cloud");
    assert_eq!(
        (
            cloud.gateways,
            cloud.addresses_per_gateway,
            cloud.ports_per_vm
        ),
        (1, 2, None)
    );
    let aws = &l.limits[0];
    assert_eq!(
        (aws.name, aws.limit, aws.planned, aws.status),
        (
            "AWS: 55,000 connections per NAT address per destination",
            55_000,
            25_782,
            LimitStatus::Binds
        )
    );
    assert_eq!(aws.decides, "2 addresses x 1 destination per NAT gateway");
    assert_eq!(l.limits[1].name, "AWS: 8 addresses per NAT gateway");
    assert_eq!(l.limits[1].status, LimitStatus::Fits);
    assert!(l.limits.iter().all(|x| !x.name.starts_with("nf_nat")));
}

#[test]
fn aws_plans_the_million_as_four_gateways_of_five_addresses() {
    let l = planned(&request(1_000_000, NatChoice::AwsNatGateway));
    assert_eq!(
        l.client_hosts.len(),
        4,
        "nf_conntrack_max: 250,000 a gateway"
    );
    assert!(l.client_hosts.iter().all(|h| h.addresses.len() == 5));
    assert_eq!(l.server.addresses, [ip(5)]);
    assert_eq!(l.containers_per_host, 9);
    assert_eq!(layout_loads(&l), [50_000; 20]);
    assert!(
        l.decisions
            .iter()
            .any(|d| d.contains("take 5 addresses (of 8 a gateway may have) x 1 destination"))
    );
}

#[test]
fn aws_past_eight_addresses_takes_destinations_or_gateways() {
    // As if a namespace held 2,000,000: one gateway, 20 paths of 51,563; 8 addresses are not
    // enough, so 3 destinations of 7 addresses each.
    let big = Machine {
        conntrack_max: 2_000_000,
        ..here()
    };
    let l = plan(&request(1_000_000, NatChoice::AwsNatGateway), &big, "p").expect("plans");
    assert_eq!(l.client_hosts.len(), 1);
    assert_eq!(l.client_hosts[0].addresses.len(), 7);
    assert_eq!(l.server.addresses.len(), 3);
    assert!(l.paths.iter().all(|p| p.connections <= 51_563));
    let eight = &l.limits[1];
    assert_eq!(
        (eight.status, eight.decides.as_str()),
        (LimitStatus::Binds, "3 destinations")
    );
    assert!(
        l.decisions
            .iter()
            .any(|d| d.contains("8 addresses, a gateway's most, are not enough"))
    );
    // Held to one destination: three gateways of 7 addresses.
    let mut r = request(1_000_000, NatChoice::AwsNatGateway);
    r.server_addresses = nz(1);
    let l = plan(&r, &big, "p").expect("plans");
    assert_eq!(l.client_hosts.len(), 3);
    assert!(l.client_hosts.iter().all(|h| h.addresses.len() == 7));
    assert_eq!(
        (l.limits[1].status, l.limits[1].decides.as_str()),
        (LimitStatus::Binds, "3 NAT gateways")
    );
}

#[test]
fn gcp_picks_the_block_for_the_fewest_nat_ips_then_vms() {
    // 2,000: one VM; the smallest block holding 2,000 with a 16th free is 4,096 (3,840).
    let l = planned(&request(2_000, NatChoice::GcpCloudNat));
    let cloud = l.cloud.as_ref().expect("a cloud");
    assert_eq!(
        (cloud.ports_per_vm, cloud.vms_per_address),
        (Some(4_096), Some(15))
    );
    assert_eq!((l.path_capacity, l.path_fill), (4_096, 3_840));
    assert_eq!(blocks(&l), [(ip(101), 1024, 5119, 2_000)]);
    assert!(
        l.lab_file
            .contains("nat = { profile = \"gcp-cloud-nat\", min_ports_per_vm = 4096 }")
    );
    // The million: 4 gateways (conntrack); 250,000 each in blocks of 8,192 (7,680 planned):
    // 33 VMs, 7 to a NAT IP, 5 NAT IPs; 1,024 would take the same 5 IPs with 261 VMs.
    let l = planned(&request(1_000_000, NatChoice::GcpCloudNat));
    assert_eq!(l.client_hosts.len(), 4);
    assert_eq!(l.containers_per_host, 33);
    assert!(l.client_hosts.iter().all(|h| h.addresses.len() == 5));
    assert_eq!(l.path_capacity, 8_192);
    assert_eq!(l.paths.len(), 4 * 33);
    assert!(l.paths.iter().all(|p| p.connections <= 7_680));
    let ips = &l.limits[1];
    assert_eq!(
        (ips.name, ips.limit, ips.planned, ips.decides.as_str()),
        (
            "GCP: 64,512 ports per NAT IP",
            7,
            7,
            "5 NAT IPs per Cloud NAT gateway"
        )
    );
    assert!(
        l.decisions
            .iter()
            .any(|d| d.contains("GCP's default of 64 would take 4167 VMs per gateway"))
    );
    // 60,480 is one NAT IP's 63 blocks of 1,024 at 960 each; one more takes a second IP.
    let l = planned(&request(60_480, NatChoice::GcpCloudNat));
    assert_eq!((l.path_capacity, l.containers_per_host), (1_024, 63));
    assert_eq!(l.client_hosts[0].addresses.len(), 1);
    let l = planned(&request(60_481, NatChoice::GcpCloudNat));
    assert_eq!(l.client_hosts[0].addresses.len(), 2);
}

#[test]
fn gcp_at_its_default_64_ports_takes_a_vm_per_60_connections() {
    // 64 ports per VM, 60 planned: 2,000 take 34 VMs (58 or 59 each) in 34 blocks of one IP.
    let l = planned(&cloud_request(2_000, NatChoice::GcpCloudNat, Some(64)));
    assert_eq!(l.containers_per_host, 34);
    assert_eq!(l.client_hosts[0].addresses, [ip(101)]);
    let b = blocks(&l);
    assert_eq!(b.len(), 34);
    assert_eq!(b[0], (ip(101), 1024, 1087, 59));
    assert_eq!(b[33], (ip(101), 3136, 3199, 58));
    assert_eq!(b.iter().map(|x| x.3).sum::<u64>(), 2_000);
    assert_eq!(l.limits[0].limit, 64);
    assert!(l.command.ends_with("--nat gcp-cloud-nat --ports-per-vm 64"));
    assert!(
        l.decisions
            .iter()
            .any(|d| d.contains("min_ports_per_vm = 64, as asked"))
    );
    // One NAT IP holds 1,008 VMs of 64: 60,480 connections; past that, a second IP.
    let l = planned(&cloud_request(60_481, NatChoice::GcpCloudNat, Some(64)));
    assert_eq!(l.containers_per_host, 1_009);
    assert_eq!(l.client_hosts[0].addresses.len(), 2);
}

#[test]
fn azure_takes_the_fewest_frontends_then_the_smallest_pool() {
    // 1-50 VMs get 1,024 ports (960 planned): 3,000 take 4 VMs.
    let l = planned(&request(3_000, NatChoice::AzureLbOutbound));
    assert_eq!(l.containers_per_host, 4);
    assert_eq!(l.path_capacity, 1_024);
    assert!(
        l.lab_file
            .contains("nat = { profile = \"azure-lb-outbound\" }")
    );
    // 50 x 960 = 48,000 is one frontend's most; a pool of 51 gets 512, so one more
    // connection takes a second frontend (51 VMs of 1,024).
    let l = planned(&request(48_000, NatChoice::AzureLbOutbound));
    assert_eq!((l.containers_per_host, l.path_capacity), (50, 1_024));
    assert_eq!(l.client_hosts[0].addresses.len(), 1);
    let l = planned(&request(48_001, NatChoice::AzureLbOutbound));
    assert_eq!((l.containers_per_host, l.path_capacity), (51, 1_024));
    assert_eq!(l.client_hosts[0].addresses.len(), 2);
    // The million: 4 load balancers of 6 frontends and 348 VMs, 128 x 6 = 768 ports each.
    let l = planned(&request(1_000_000, NatChoice::AzureLbOutbound));
    assert_eq!(l.client_hosts.len(), 4);
    assert!(l.client_hosts.iter().all(|h| h.addresses.len() == 6));
    assert_eq!((l.containers_per_host, l.path_capacity), (348, 768));
    let azure = &l.limits[0];
    assert_eq!(
        (azure.name, azure.limit, azure.planned),
        ("Azure: SNAT ports per VM by backend pool size", 768, 719)
    );
}

#[test]
fn every_cloud_plan_predicts_exactly_n_with_no_path_over_its_fill() {
    for nat in [
        NatChoice::AwsNatGateway,
        NatChoice::GcpCloudNat,
        NatChoice::AzureLbOutbound,
    ] {
        for n in [1, 7, 1_000, 28_233, 51_564, 60_481, 262_144, 1_234_567] {
            let l = planned(&request(n, nat));
            let sum: u64 = l.paths.iter().map(|p| p.connections).sum();
            assert_eq!(sum, n, "{nat:?} {n}");
            assert!(
                l.paths
                    .iter()
                    .all(|p| p.connections <= u64::from(l.path_fill))
            );
            assert_eq!(l.path_fill, path_fill(l.path_capacity));
            assert!(l.capacity.conntrack_per_namespace <= here().conntrack_usable());
            let c = &l.connections_per_container;
            assert!(c.max - c.min <= 1, "{nat:?} {n}");
            assert!(c.max <= u64::from(DOCKER_LOCAL_PORTS));
            assert!(l.containers_per_host <= 1_023);
            // The file loads back with each host the profile's NAT.
            let lab = load(
                &Source::new("p.toml", l.lab_file.clone()),
                &LoadOptions::default(),
            )
            .expect("loads")
            .plan;
            assert_eq!(path_loads(&lab), layout_loads(&l), "{nat:?} {n}");
        }
    }
}

#[test]
fn cloud_requests_the_cloud_does_not_allow_are_refused() {
    let refused = |r: &Request| match search(r, &here()) {
        Ok(s) => panic!("planned {s:?}"),
        Err(e) => {
            assert_eq!(crate::error::exit_code(&e), crate::error::exit::INVALID);
            format!("{e:#}")
        }
    };
    let mut r = request(10_000, NatChoice::AwsNatGateway);
    r.source_addresses = nz(9);
    assert!(refused(&r).contains("at most 8 addresses"));
    let why = refused(&cloud_request(10_000, NatChoice::GcpCloudNat, Some(100)));
    assert!(why.contains("power of two"), "{why}");
    for nat in [
        NatChoice::AwsNatGateway,
        NatChoice::AzureLbOutbound,
        NatChoice::Masquerade,
    ] {
        let why = refused(&cloud_request(10_000, nat, Some(64)));
        assert!(why.contains("min_ports_per_vm"), "{why}");
    }
}
