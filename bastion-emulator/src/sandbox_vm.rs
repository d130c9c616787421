//! A VM for the sandbox: `vm1` with an echo server on port 22 (and on 3389, standing in for
//! its RDP server) and a small HTTP server on port 80,
//! behind its own Standard Bastion (`vm-bastion`, tunneling and IP connect on) and a Developer
//! one (`vm-dev-bastion`), added to a running [`Sandbox`] so `bastion tunnel` + curl/nc work
//! against it.
//!
//! The [`Sandbox`] has clusters but no VM; this adds one through the emulators' public APIs (a
//! second data-plane emulator on the sandbox's CA, and ARM documents added at runtime).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::sandbox::{SPOKE_SUBSCRIPTION, Sandbox, TENANT};
use crate::{BastionFixture, Emulator, EmulatorConfig, EmulatorError, TargetFixture};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The VM's resource group.
pub const VM_RESOURCE_GROUP: &str = "vm-rg";
/// The VM's Bastion name.
pub const VM_BASTION: &str = "vm-bastion";
/// A Developer SKU Bastion in the VM's VNet (data-pod lookup, ports 22/3389, one connection).
pub const VM_DEV_BASTION: &str = "vm-dev-bastion";
/// What the VM's HTTP server answers.
pub const HTTP_GREETING: &str = "Hello from vm1 behind the sandbox Bastion\n";

/// The VM's resource id.
pub fn vm_id() -> String {
    format!(
        "/subscriptions/{SPOKE_SUBSCRIPTION}/resourceGroups/{VM_RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachines/vm1"
    )
}

/// The VM's Bastion's resource id.
pub fn vm_bastion_id() -> String {
    bastion_id(VM_BASTION)
}

fn bastion_id(name: &str) -> String {
    format!(
        "/subscriptions/{SPOKE_SUBSCRIPTION}/resourceGroups/{VM_RESOURCE_GROUP}/providers/Microsoft.Network/bastionHosts/{name}"
    )
}

/// The running VM: its Bastion emulator and its servers.
#[derive(Debug)]
pub struct SandboxVm {
    bastion: Emulator,
    echo: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl SandboxVm {
    /// Starts the VM's servers and Bastion, and adds both to the sandbox's ARM.
    pub async fn add_to(sandbox: &Sandbox) -> Result<Self, EmulatorError> {
        let fail = |e: String| EmulatorError::Config(format!("cannot start the sandbox VM: {e}"));
        let (echo, echo_task) = crate::spawn_echo_target().await?;
        let (http, http_task) = spawn_http_server().await?;
        let fixture = BastionFixture::new("Standard", TENANT, VM_BASTION)
            .id(vm_bastion_id())
            .tunneling(true)
            .ip_connect(true);
        let developer =
            BastionFixture::new("Developer", TENANT, VM_DEV_BASTION).id(bastion_id(VM_DEV_BASTION));
        let bastion = Emulator::start(
            EmulatorConfig::single(fixture.clone())
                .with_bastion(developer.clone())
                .data_pod_host("pod-vm.bastion.test")
                // IP connect reaches the echo server on its own port (with --allow-any-port);
                // the service's own 22/3389 rule is tested on emulators of their own.
                .ip_connect_ports(None)
                .ca(sandbox.ca().clone())
                .with_target(TargetFixture::new(vm_id(), 22, echo))
                // `bastion rdp` reaches the VM's "RDP server": the echo server again.
                .with_target(TargetFixture::new(vm_id(), 3389, echo))
                .with_target(TargetFixture::new(vm_id(), 80, http)),
        )
        .await?;
        let dns = bastion.endpoint_for(&fixture.dns_name);
        let vnet = format!(
            "/subscriptions/{SPOKE_SUBSCRIPTION}/resourceGroups/{VM_RESOURCE_GROUP}/providers/Microsoft.Network/virtualNetworks/vm-vnet"
        );
        let docs = [
            json!({
                "id": vnet, "name": "vm-vnet", "type": "Microsoft.Network/virtualNetworks", "location": "eastus",
                "properties": { "provisioningState": "Succeeded",
                    "addressSpace": { "addressPrefixes": ["10.2.0.0/16"] },
                    "subnets": [
                        { "id": format!("{vnet}/subnets/AzureBastionSubnet"), "name": "AzureBastionSubnet",
                          "properties": { "addressPrefix": "10.2.1.0/26" } },
                        { "id": format!("{vnet}/subnets/default"), "name": "default",
                          "properties": { "addressPrefix": "10.2.0.0/24" } }
                    ],
                    "virtualNetworkPeerings": [] }
            }),
            json!({
                "id": vm_bastion_id(), "name": VM_BASTION, "type": "Microsoft.Network/bastionHosts",
                "location": "eastus", "sku": { "name": "Standard" },
                "properties": { "provisioningState": "Succeeded", "dnsName": dns, "scaleUnits": 2,
                    "enableTunneling": true, "enableIpConnect": true,
                    "ipConfigurations": [{ "name": "bastionHostIpConfiguration",
                        "properties": { "subnet": { "id": format!("{vnet}/subnets/AzureBastionSubnet") } } }] }
            }),
            json!({
                "id": developer.id, "name": VM_DEV_BASTION, "type": "Microsoft.Network/bastionHosts",
                "location": "eastus", "sku": { "name": "Developer" },
                "properties": { "provisioningState": "Succeeded",
                    "dnsName": bastion.endpoint_for(&developer.dns_name),
                    "virtualNetwork": { "id": vnet }, "ipConfigurations": [] }
            }),
            json!({
                "id": vm_id(), "name": "vm1", "type": "Microsoft.Compute/virtualMachines",
                "location": "eastus",
                "properties": { "provisioningState": "Succeeded", "vmId": "5a0c8d4e-0000-4000-8000-00000000a001",
                    "hardwareProfile": { "vmSize": "Standard_B2s" } }
            }),
        ];
        sandbox.arm().with_fixtures(|f| {
            f.resource_group(SPOKE_SUBSCRIPTION, VM_RESOURCE_GROUP)
                .map_err(|e| fail(e.0.clone()))?;
            for doc in docs {
                f.resource(doc).map_err(|e| fail(e.0.clone()))?;
            }
            Ok::<(), EmulatorError>(())
        })?;
        Ok(Self {
            bastion,
            echo,
            tasks: vec![echo_task, http_task],
        })
    }

    /// The VM's Bastion data-plane emulator (its sessions, for tests).
    pub fn bastion(&self) -> &Emulator {
        &self.bastion
    }

    /// Host-to-address overrides for the VM's Bastion.
    pub fn resolve(&self) -> Vec<(String, IpAddr)> {
        self.bastion.resolve_overrides()
    }

    /// The echo server's address: IP connect in the emulator dials the IP and port it is given,
    /// so `--target-ip-address 127.0.0.1 --resource-port <this port> --allow-any-port` reaches it.
    pub fn echo_addr(&self) -> SocketAddr {
        self.echo
    }

    /// Stops the VM's Bastion and servers.
    pub async fn shutdown(self) {
        self.bastion.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
    }
}

/// A minimal HTTP/1.1 server: every request gets [`HTTP_GREETING`], then the connection closes.
async fn spawn_http_server() -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        crate::bastion::serve_forever(|| listener.accept(), |(mut stream, _): (TcpStream, _)| {
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                // Read the request head (bounded), then answer.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{HTTP_GREETING}",
                    HTTP_GREETING.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        })
        .await;
    });
    Ok((addr, task))
}
