//! The firewall seat of the lab engine: what `up` needs to write a Docker host's rules, and
//! nothing of how. `nat::firewall::DockerFirewall` fills it; the engine never names `nat`, which reads
//! the plan, so the two modules do not go in a circle.

use super::plan::{Docker, Endpoint};

/// Writes a Docker host's firewall.
pub trait Firewall: Sync {
    /// Writes the rules of `docker`'s networks, and those for its containers (`endpoints`,
    /// in creation order), into the nftables of the namespace the calling thread is in. It runs
    /// inside a setns'd closure, so it is synchronous.
    fn apply(&self, docker: &Docker, endpoints: &[Endpoint]) -> anyhow::Result<()>;
}
