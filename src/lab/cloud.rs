//! The managed cloud NATs a Docker host can play (`nat = { profile = "..." }`): each cloud's
//! published numbers, with where they are published, and how a profile shares its ports among
//! the containers behind it (the cloud's VMs). Pure: the plan holds a [`CloudNat`], the
//! firewall writes its rules, the prediction and the reports count with it.
//!
//! The numbers (`../shared/notes/cloud-nat.md` has the quotes):
//! - AWS NAT gateway: "Each IPv4 address can support up to 55,000 simultaneous connections to
//!   each unique destination" (destination IP, port, protocol); up to 8 addresses (1 primary, 7
//!   secondary); ports 1024-65535.
//! - GCP Cloud NAT, static allocation: each NAT IP offers 64,512 source ports (1024-65535);
//!   each VM gets `min_ports_per_vm` of them (default 64, a power of two), usable once per
//!   destination (IP, port, protocol); a VM the addresses cannot hold gets no NAT.
//! - Azure load balancer outbound (default SNAT): 64,000 ports per frontend IP, preallocated per
//!   VM by backend pool size (1-50: 1,024; 51-100: 512; 101-200: 256; 201-400: 128; 401-800:
//!   64; 801-1,000: 32), times the frontend IPs, at most 1,024.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::plan::{ALL_PORTS, PortRange};

/// A cloud's NAT, by the name a lab file gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudProfile {
    AwsNatGateway,
    GcpCloudNat,
    AzureLbOutbound,
}

/// AWS: connections per address to one destination (IP, port, protocol).
pub const AWS_PORTS_PER_DESTINATION: u32 = 55_000;
/// AWS: addresses a NAT gateway may have (1 primary, 7 secondary).
pub const AWS_MAX_ADDRESSES: usize = 8;
/// GCP: `minPortsPerVm` when none is set (static allocation).
pub const GCP_DEFAULT_PORTS_PER_VM: u32 = 64;
/// GCP: the largest block that fits one NAT IP's 64,512 ports as a power of two.
pub const GCP_MAX_PORTS_PER_VM: u32 = 32_768;
/// Azure: the most ports a VM is preallocated, whatever the pool and frontends.
pub const AZURE_MAX_PORTS_PER_VM: u32 = 1_024;
/// Azure: the largest backend pool its default preallocation table covers.
pub const AZURE_MAX_POOL: usize = 1_000;

impl CloudProfile {
    pub const ALL: [CloudProfile; 3] = [
        CloudProfile::AwsNatGateway,
        CloudProfile::GcpCloudNat,
        CloudProfile::AzureLbOutbound,
    ];

    /// The lab file's name: `aws-nat-gateway`, `gcp-cloud-nat`, `azure-lb-outbound`.
    pub fn name(self) -> &'static str {
        match self {
            CloudProfile::AwsNatGateway => "aws-nat-gateway",
            CloudProfile::GcpCloudNat => "gcp-cloud-nat",
            CloudProfile::AzureLbOutbound => "azure-lb-outbound",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The product, as the cloud calls it.
    pub fn product(self) -> &'static str {
        match self {
            CloudProfile::AwsNatGateway => "AWS NAT gateway",
            CloudProfile::GcpCloudNat => "GCP Cloud NAT",
            CloudProfile::AzureLbOutbound => "Azure load balancer outbound SNAT",
        }
    }

    /// Where the numbers are published.
    pub fn source(self) -> &'static str {
        match self {
            CloudProfile::AwsNatGateway => {
                "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html"
            }
            CloudProfile::GcpCloudNat => "https://cloud.google.com/nat/docs/ports-and-addresses",
            CloudProfile::AzureLbOutbound => {
                "https://learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections"
            }
        }
    }

    /// The ports each NAT address offers, as the lab writes them: AWS's 55,000 per destination
    /// as 1024-56023, GCP's 64,512 as 1024-65535, Azure's 64,000 as 1024-65023.
    pub fn address_ports(self) -> PortRange {
        let hi = match self {
            CloudProfile::AwsNatGateway => 1023 + AWS_PORTS_PER_DESTINATION as u16,
            CloudProfile::GcpCloudNat => 65_535,
            CloudProfile::AzureLbOutbound => 1023 + 64_000,
        };
        PortRange::new(1024, hi).unwrap_or(ALL_PORTS)
    }

    /// How the cloud shows the wall, beside the kernel's `insert_failed`.
    pub fn symptom(self) -> &'static str {
        match self {
            CloudProfile::AwsNatGateway => {
                "CloudWatch AWS/NATGateway ErrorPortAllocation (and PacketsDropCount)"
            }
            CloudProfile::GcpCloudNat => {
                "nat/dropped_sent_packets_count with reason OUT_OF_RESOURCES; logs allocation_status = DROPPED"
            }
            CloudProfile::AzureLbOutbound => {
                "SNAT port exhaustion: SNAT Connection Count, connection state Failed > 0"
            }
        }
    }

    /// What to change in the cloud when the wall is hit.
    pub fn remedy(self) -> &'static str {
        match self {
            CloudProfile::AwsNatGateway => {
                "associate more addresses with the NAT gateway (each adds 55,000 per destination, up to 8), \
                 or spread the load over more destinations"
            }
            CloudProfile::GcpCloudNat => {
                "raise min_ports_per_vm (or use dynamic port allocation), add NAT IP addresses, \
                 or spread the load over more destinations"
            }
            CloudProfile::AzureLbOutbound => {
                "add frontend IPs or set the outbound rule's ports per instance explicitly \
                 (or use a NAT gateway), or spread the load over more destinations"
            }
        }
    }

    /// Whether each VM has a fixed block of ports of its own.
    pub fn per_vm(self) -> bool {
        !matches!(self, CloudProfile::AwsNatGateway)
    }
}

/// A host playing a cloud's NAT: the profile, the NAT addresses (the host's own, in order),
/// and, for a profile that preallocates, the ports each VM (container) gets on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudNat {
    pub profile: CloudProfile,
    pub addresses: Vec<Ipv4Addr>,
    /// GCP's `min_ports_per_vm`, Azure's preallocation for the pool; `None` for AWS, which
    /// shares every address's ports among all flows.
    pub ports_per_vm: Option<u32>,
}

/// One VM's ports: an address and a block of its ports, used once per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmBlock {
    pub address: Ipv4Addr,
    pub ports: PortRange,
}

impl CloudNat {
    /// The block of each of `vms` VMs, in order: VM k on address k / b at the k % b-th block of
    /// the address's ports, b blocks to an address; `None` for a VM that fits on no address
    /// (GCP drops its packets). Empty for a profile without blocks.
    pub fn blocks(&self, vms: usize) -> Vec<Option<VmBlock>> {
        let Some(per_vm) = self.ports_per_vm.filter(|p| *p > 0) else {
            return Vec::new();
        };
        let range = self.profile.address_ports();
        let per_address = (range.size() / per_vm) as usize;
        (0..vms)
            .map(|k| {
                let address = *self.addresses.get(k.checked_div(per_address)?)?;
                let lo = u32::from(range.lo()) + (k % per_address) as u32 * per_vm;
                let ports = PortRange::new(lo as u16, (lo + per_vm - 1) as u16).ok()?;
                Some(VmBlock { address, ports })
            })
            .collect()
    }

    /// The VMs the addresses can hold.
    pub fn vm_capacity(&self) -> Option<usize> {
        let per_vm = self.ports_per_vm.filter(|p| *p > 0)?;
        let per_address = (self.profile.address_ports().size() / per_vm) as usize;
        Some(per_address * self.addresses.len())
    }
}

/// Azure's default preallocation per frontend IP for a backend pool of `pool` VMs; `None`
/// beyond the table (more than 1,000).
pub fn azure_preallocated(pool: usize) -> Option<u32> {
    Some(match pool {
        0..=50 => 1_024,
        51..=100 => 512,
        101..=200 => 256,
        201..=400 => 128,
        401..=800 => 64,
        801..=AZURE_MAX_POOL => 32,
        _ => return None,
    })
}

/// Azure's ports per VM: "MIN(# of default SNAT ports provided based on pool size * number of
/// frontend IPs associated with the pool, 1024)".
pub fn azure_ports_per_vm(pool: usize, frontends: usize) -> Option<u32> {
    let per_ip = azure_preallocated(pool)?;
    Some(
        per_ip
            .saturating_mul(frontends.max(1) as u32)
            .min(AZURE_MAX_PORTS_PER_VM),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 49, i)
    }

    #[test]
    fn names_round_trip() {
        for p in CloudProfile::ALL {
            assert_eq!(CloudProfile::from_name(p.name()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::Value::String(p.name().into())
            );
        }
        assert_eq!(CloudProfile::from_name("aws"), None);
    }

    #[test]
    fn published_port_counts() {
        assert_eq!(CloudProfile::AwsNatGateway.address_ports().size(), 55_000);
        assert_eq!(CloudProfile::GcpCloudNat.address_ports().size(), 64_512);
        assert_eq!(CloudProfile::AzureLbOutbound.address_ports().size(), 64_000);
    }

    /// GCP's arithmetic: VMs per NAT IP = 64,512 / ports per VM.
    #[test]
    fn gcp_blocks() {
        let nat = CloudNat {
            profile: CloudProfile::GcpCloudNat,
            addresses: vec![addr(6), addr(7)],
            ports_per_vm: Some(64),
        };
        assert_eq!(nat.vm_capacity(), Some(2 * 1_008));
        let blocks = nat.blocks(2_017);
        let b = |k: usize| blocks[k].map(|b| (b.address, b.ports.lo(), b.ports.hi()));
        assert_eq!(b(0), Some((addr(6), 1024, 1087)));
        assert_eq!(b(1), Some((addr(6), 1088, 1151)));
        assert_eq!(b(1_007), Some((addr(6), 65_472, 65_535)));
        assert_eq!(b(1_008), Some((addr(7), 1024, 1087)));
        assert_eq!(b(2_015), Some((addr(7), 65_472, 65_535)));
        assert_eq!(b(2_016), None);
        for (ports, vms) in [(128, 504), (1_024, 63), (32_768, 1)] {
            let n = CloudNat {
                ports_per_vm: Some(ports),
                addresses: vec![addr(6)],
                ..nat.clone()
            };
            assert_eq!(n.vm_capacity(), Some(vms), "{ports}");
        }
    }

    #[test]
    fn azure_table() {
        let cases = [
            (1, 1, 1_024),
            (50, 1, 1_024),
            (51, 1, 512),
            (100, 1, 512),
            (100, 2, 1_024),
            (101, 1, 256),
            (400, 1, 128),
            (800, 1, 64),
            (1_000, 1, 32),
            (1_000, 4, 128),
        ];
        for (pool, ips, ports) in cases {
            assert_eq!(azure_ports_per_vm(pool, ips), Some(ports), "{pool} {ips}");
        }
        assert_eq!(azure_ports_per_vm(1_001, 1), None);
        // The table is sized so every pool fits its frontends.
        for pool in [50, 100, 200, 400, 800, 1_000] {
            let nat = CloudNat {
                profile: CloudProfile::AzureLbOutbound,
                addresses: vec![addr(6)],
                ports_per_vm: azure_ports_per_vm(pool, 1),
            };
            assert!(nat.blocks(pool).iter().all(Option::is_some), "{pool}");
        }
    }

    #[test]
    fn aws_has_no_blocks() {
        let nat = CloudNat {
            profile: CloudProfile::AwsNatGateway,
            addresses: vec![addr(6)],
            ports_per_vm: None,
        };
        assert!(nat.blocks(4).is_empty());
        assert_eq!(nat.vm_capacity(), None);
    }
}
