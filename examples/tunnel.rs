//! The smallest embedding of bastion-core: serve a local port through a Bastion endpoint.
//!
//! ```text
//! export BASTION_ARM_TOKEN=$(az account get-access-token --query accessToken -o tsv)
//! cargo run -p bastion-examples --example tunnel -- \
//!     bst-1234.bastion.azure.com /subscriptions/.../virtualMachines/vm1 22 2222 [ca.pem]
//! ```
//!
//! Without arguments it starts the built-in Bastion emulator with an echo target and tunnels to
//! that, so it runs out of the box.

use std::sync::Arc;

use bastion_core::{Endpoint, LocalListener, StaticTokenCredential, Target, Tunnel, TunnelConfig};
use bastion_emulator::{BastionFixture, Emulator, EmulatorConfig, TargetFixture};
use bastion_examples::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing("info");
    let args: Vec<String> = std::env::args().skip(1).collect();

    // Keeps the emulator alive when we run against it.
    let mut _sandbox = None;
    let (config, token) = if args.is_empty() {
        let (echo, _) = bastion_emulator::spawn_echo_target().await?;
        let bastion = BastionFixture::standard(bastion_emulator::TEST_TENANT);
        let vm = bastion_emulator::vm_resource_id("vm1");
        let emu = Emulator::start(
            EmulatorConfig::single(bastion.clone()).with_target(TargetFixture::new(&vm, 22, echo)),
        )
        .await?;
        let mut config = TunnelConfig::new(
            Endpoint::parse(&emu.endpoint_for(&bastion.dns_name))?,
            Target::resource(vm, 22)?,
        );
        config.http.extra_root_ca_pem = Some(emu.ca_pem().into_bytes());
        config.http.resolve = emu.resolve_overrides();
        let token = bastion_emulator::jwt::mint(&bastion_emulator::TestClaims::new(
            bastion_emulator::TEST_TENANT,
            "example-user",
        ));
        _sandbox = Some(emu);
        eprintln!("No arguments: tunnelling to an echo server behind the built-in emulator.");
        (config, token)
    } else {
        let [endpoint, target, port, local_port, rest @ ..] = args.as_slice() else {
            return Err("usage: tunnel ENDPOINT TARGET_RESOURCE_ID RESOURCE_PORT LOCAL_PORT [CA_FILE]  (token in BASTION_ARM_TOKEN)".into());
        };
        let mut config = TunnelConfig::new(
            Endpoint::parse(endpoint)?,
            Target::resource(target, port.parse()?)?,
        );
        if let Some(ca) = rest.first() {
            config.http.extra_root_ca_pem = Some(std::fs::read(ca)?);
        }
        let token = std::env::var("BASTION_ARM_TOKEN").map_err(
            |_| "set BASTION_ARM_TOKEN to an ARM access token (az account get-access-token)",
        )?;
        let listener = LocalListener::bind_loopback(local_port.parse()?).await?;
        return run(config, token, listener).await;
    };
    let listener = LocalListener::bind_loopback(0).await?;
    run(config, token, listener).await
}

async fn run(config: TunnelConfig, token: String, listener: LocalListener) -> Result<(), Error> {
    let tunnel = Tunnel::new(config, Arc::new(StaticTokenCredential::from_jwt(token)))?;
    eprintln!("Tunnel is ready, connect on port {}", listener.port());
    let summary = tunnel
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    eprintln!(
        "Closed: {} connections, {} failed, {} sessions left undeleted",
        summary.accepted, summary.failed, summary.undeleted_sessions
    );
    Ok(())
}
