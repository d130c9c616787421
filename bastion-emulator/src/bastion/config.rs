//! Fixtures and configuration of the data-plane emulator.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::ca::TestCa;
use crate::ids;

/// The subscription the fixture constructors put resource ids in.
pub const TEST_SUBSCRIPTION: &str = "11111111-1111-1111-1111-111111111111";
/// The tenant the fixture constructors use when none is given.
pub const TEST_TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
/// The default data-pod host name (served by the emulator itself).
pub const DEFAULT_DATA_POD_HOST: &str = "pod-1.bastion.test";

/// One Bastion host the emulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BastionFixture {
    /// The ARM resource id of the Bastion host.
    pub id: String,
    /// `sku.name`: `Basic`, `Standard`, `Premium`, `Developer` or `QuickConnect` (compared
    /// case-insensitively).
    pub sku: String,
    /// The tenant ARM tokens must be issued by (`tid`).
    pub tenant_id: String,
    /// `properties.dnsName`: the host name requests are routed by (`Host` header). For
    /// Developer/QuickConnect this is the `omnibrain` host `POST /api/connection` is sent to.
    pub dns_name: String,
    /// `properties.enableTunneling`.
    pub enable_tunneling: bool,
    /// `properties.enableIpConnect`.
    pub enable_ip_connect: bool,
}

impl BastionFixture {
    /// A Bastion of the given SKU in `tenant_id`, named `name`, with a generated
    /// `bst-<guid>.bastion.test` DNS name (`omnibrain-<hex>.bastion.test` for Developer and
    /// QuickConnect). Tunneling is enabled except for Basic, Developer and QuickConnect; IP
    /// connect is off (as when `enableIpConnect` is absent), turn it on with
    /// [`BastionFixture::ip_connect`].
    pub fn new(sku: impl Into<String>, tenant_id: impl Into<String>, name: &str) -> Self {
        let sku = sku.into();
        let guid = ids::guid(&mut rand::rng());
        let developer = is_developer_sku(&sku);
        let dns_name = if developer {
            format!("omnibrain-{}.bastion.test", &guid[..8])
        } else {
            format!("bst-{guid}.bastion.test")
        };
        let basic = sku.eq_ignore_ascii_case("Basic");
        BastionFixture {
            id: format!(
                "/subscriptions/{TEST_SUBSCRIPTION}/resourceGroups/bastion-rg/providers/Microsoft.Network/bastionHosts/{name}"
            ),
            sku,
            tenant_id: tenant_id.into(),
            dns_name,
            enable_tunneling: !basic && !developer,
            enable_ip_connect: false,
        }
    }

    /// A Standard Bastion with tunneling enabled and IP connect disabled.
    pub fn standard(tenant_id: impl Into<String>) -> Self {
        Self::new("Standard", tenant_id, "bastion-std")
    }

    /// A Developer Bastion (reached through `POST /api/connection` and the data pod).
    pub fn developer(tenant_id: impl Into<String>) -> Self {
        Self::new("Developer", tenant_id, "bastion-dev")
    }

    /// Sets `enableTunneling`.
    pub fn tunneling(mut self, enabled: bool) -> Self {
        self.enable_tunneling = enabled;
        self
    }

    /// Sets `enableIpConnect`.
    pub fn ip_connect(mut self, enabled: bool) -> Self {
        self.enable_ip_connect = enabled;
        self
    }

    /// Sets the DNS name.
    pub fn dns_name(mut self, dns_name: impl Into<String>) -> Self {
        self.dns_name = dns_name.into();
        self
    }

    /// Sets the resource id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Whether the SKU is Developer or QuickConnect (data pod through `/api/connection`).
    pub fn is_developer(&self) -> bool {
        is_developer_sku(&self.sku)
    }

    /// The resource group part of [`Self::id`], for building IP-connect resource ids.
    pub fn resource_group(&self) -> Option<&str> {
        segment_after(&self.id, "resourceGroups")
    }

    /// The subscription part of [`Self::id`].
    pub fn subscription(&self) -> Option<&str> {
        segment_after(&self.id, "subscriptions")
    }

    /// The `bh-hostConnect` resource id IP connect uses for `ip`, in this Bastion's subscription
    /// and resource group (see docs/protocol.md#targets-and-ip-connect).
    pub fn ip_connect_resource_id(&self, ip: std::net::IpAddr) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/bh-hostConnect/{ip}",
            self.subscription().unwrap_or(TEST_SUBSCRIPTION),
            self.resource_group().unwrap_or("bastion-rg"),
        )
    }
}

fn segment_after<'a>(id: &'a str, key: &str) -> Option<&'a str> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case(key) {
            return parts.next().filter(|s| !s.is_empty());
        }
    }
    None
}

pub(crate) fn is_developer_sku(sku: &str) -> bool {
    sku.eq_ignore_ascii_case("Developer") || sku.eq_ignore_ascii_case("QuickConnect")
}

/// One target the Bastion can reach: `(resource_id, port)` maps to a local TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFixture {
    /// The target's ARM resource id, matched case-insensitively.
    pub resource_id: String,
    /// The target port (`workloadHostPort`).
    pub port: u16,
    /// Where the emulator connects for this target.
    pub addr: SocketAddr,
}

impl TargetFixture {
    /// A target fixture.
    pub fn new(resource_id: impl Into<String>, port: u16, addr: SocketAddr) -> Self {
        TargetFixture {
            resource_id: resource_id.into(),
            port,
            addr,
        }
    }

    /// A virtual machine `name` in [`TEST_SUBSCRIPTION`], resource group `app-rg`.
    pub fn vm(name: &str, port: u16, addr: SocketAddr) -> Self {
        Self::new(vm_resource_id(name), port, addr)
    }
}

/// The resource id of VM `name` in [`TEST_SUBSCRIPTION`], resource group `app-rg`.
pub fn vm_resource_id(name: &str) -> String {
    format!(
        "/subscriptions/{TEST_SUBSCRIPTION}/resourceGroups/app-rg/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

/// Configuration of [`super::Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The Bastion hosts served (routed by their `dns_name`).
    pub bastions: Vec<BastionFixture>,
    /// The reachable targets.
    pub targets: Vec<TargetFixture>,
    /// Number of Bastion instances ("nodes"); sessions are spread round-robin. Default 2.
    pub nodes: usize,
    /// Listening address. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// The CA issuing the server certificate; a new one is generated when `None`.
    pub ca: Option<TestCa>,
    /// Host name of the Developer data pod; served by this same server and returned by
    /// `POST /api/connection`. Default [`DEFAULT_DATA_POD_HOST`].
    pub data_pod_host: String,
    /// Ports IP connect may reach; `None` allows any. Default `Some([22, 3389])`.
    pub ip_connect_ports: Option<Vec<u16>>,
    /// How long a `websocketToken` stays usable after the POST. Default 60 s.
    pub websocket_token_ttl: Duration,
    /// More names for the server certificate (and [`super::Emulator::resolve_overrides`]).
    pub extra_names: Vec<String>,
    /// Seed for the token RNG; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Whether the `/_emulator/*` control API is served. Default true.
    pub control_api: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bastions: Vec::new(),
            targets: Vec::new(),
            nodes: 2,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ca: None,
            data_pod_host: DEFAULT_DATA_POD_HOST.to_owned(),
            ip_connect_ports: Some(vec![22, 3389]),
            websocket_token_ttl: Duration::from_secs(60),
            extra_names: Vec::new(),
            seed: None,
            control_api: true,
        }
    }
}

impl EmulatorConfig {
    /// A configuration serving one Bastion and no targets yet.
    pub fn single(bastion: BastionFixture) -> Self {
        EmulatorConfig {
            bastions: vec![bastion],
            ..Default::default()
        }
    }

    /// Adds a Bastion.
    pub fn with_bastion(mut self, bastion: BastionFixture) -> Self {
        self.bastions.push(bastion);
        self
    }

    /// Adds a target.
    pub fn with_target(mut self, target: TargetFixture) -> Self {
        self.targets.push(target);
        self
    }

    /// Adds a target from its parts.
    pub fn target(self, resource_id: impl Into<String>, port: u16, addr: SocketAddr) -> Self {
        self.with_target(TargetFixture::new(resource_id, port, addr))
    }

    /// Sets the number of nodes.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Uses this CA (e.g. shared with the ARM emulator).
    pub fn ca(mut self, ca: TestCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Sets the listening address.
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets the IP-connect port allow-list (`None` = any port).
    pub fn ip_connect_ports(mut self, ports: Option<Vec<u16>>) -> Self {
        self.ip_connect_ports = ports;
        self
    }

    /// Sets the `websocketToken` lifetime.
    pub fn websocket_token_ttl(mut self, ttl: Duration) -> Self {
        self.websocket_token_ttl = ttl;
        self
    }

    /// Sets the data-pod host name.
    pub fn data_pod_host(mut self, host: impl Into<String>) -> Self {
        self.data_pod_host = host.into();
        self
    }

    /// Adds a name to the server certificate.
    pub fn extra_name(mut self, name: impl Into<String>) -> Self {
        self.extra_names.push(name.into());
        self
    }

    /// Seeds the token RNG for reproducible tokens.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Every name the server certificate covers and the emulator answers for.
    pub(crate) fn served_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut push = |n: &str| {
            let n = n.trim().to_ascii_lowercase();
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        };
        for b in &self.bastions {
            push(&b.dns_name);
        }
        push(&self.data_pod_host);
        for n in &self.extra_names {
            push(n);
        }
        push("localhost");
        push("127.0.0.1");
        names
    }

    pub(crate) fn validate(&self) -> Result<(), crate::EmulatorError> {
        use crate::EmulatorError::Config;
        if self.nodes == 0 {
            return Err(Config("`nodes` must be at least 1".into()));
        }
        for b in &self.bastions {
            if b.dns_name.trim().is_empty() {
                return Err(Config(format!("Bastion {} has an empty dns_name", b.id)));
            }
        }
        if self.data_pod_host.trim().is_empty() {
            return Err(Config("`data_pod_host` must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_have_plausible_shapes() {
        let b = BastionFixture::standard("t1");
        assert!(b.dns_name.starts_with("bst-") && b.dns_name.ends_with(".bastion.test"));
        assert!(b.enable_tunneling && !b.enable_ip_connect && !b.is_developer());
        assert_eq!(b.resource_group(), Some("bastion-rg"));
        assert_eq!(b.subscription(), Some(TEST_SUBSCRIPTION));
        let ip = b.ip_connect_resource_id("10.0.0.4".parse().unwrap());
        assert!(ip.ends_with("/providers/Microsoft.Network/bh-hostConnect/10.0.0.4"));
        let d = BastionFixture::developer("t1");
        assert!(d.is_developer() && !d.enable_tunneling);
        assert!(!BastionFixture::new("Basic", "t", "b").enable_tunneling);
    }

    #[test]
    fn served_names_cover_everything_once() {
        let b = BastionFixture::standard("t").dns_name("BST-1.bastion.test");
        let cfg = EmulatorConfig::single(b).extra_name("localhost");
        assert_eq!(
            cfg.served_names(),
            vec![
                "bst-1.bastion.test",
                DEFAULT_DATA_POD_HOST,
                "localhost",
                "127.0.0.1"
            ]
        );
        assert!(cfg.validate().is_ok());
        assert!(cfg.nodes(0).validate().is_err());
    }
}
