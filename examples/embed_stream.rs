//! Embedding without a local port: a hyper HTTP client speaking HTTPS through a
//! [`TunnelConnection`] (an in-process `AsyncRead + AsyncWrite`), to the API server of an AKS
//! private cluster behind a Bastion.
//!
//! ```text
//! cargo run -p bastion-examples --example embed_stream
//! ```
//!
//! It starts the built-in sandbox (ARM, Bastion and Kubernetes emulators on loopback) and asks
//! the private cluster `myaks` for `GET /version`, verifying the API server's certificate
//! against its private FQDN, exactly as kubectl would through `bastion aks`.

use std::sync::Arc;

use bastion_core::{Endpoint, StaticTokenCredential, Target, Tunnel, TunnelConfig};
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::{HUB_BASTION, PRIVATE_CLUSTER, PRIVATE_FQDN};
use bastion_examples::{Error, init_tracing};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing("warn");

    let sandbox = Sandbox::start().await?;
    let endpoint = sandbox
        .bastion_endpoint(HUB_BASTION)
        .ok_or("the sandbox has no hub Bastion")?;

    // The tunnel: cluster id (as ARM returns it) port 443, through the hub Bastion.
    let mut config = TunnelConfig::new(
        Endpoint::parse(&endpoint)?,
        Target::resource(PRIVATE_CLUSTER, 443)?,
    );
    config.http.extra_root_ca_pem = Some(sandbox.ca_pem().into_bytes());
    config.http.resolve = sandbox.resolve();
    let tunnel = Tunnel::new(
        config,
        Arc::new(StaticTokenCredential::from_jwt(sandbox.default_token())),
    )?;

    // One tunnelled connection: token exchange + WebSocket, no local socket anywhere.
    let conn = tunnel.connect().await?;
    println!(
        "Tunnel open through Bastion node {}",
        conn.node_id().unwrap_or("?")
    );

    // TLS to the API server inside the tunnel, checked against its real (private) name.
    let tls = bastion_core::tls::client_config(Some(sandbox.ca_pem().as_bytes()))?;
    let server_name = rustls::pki_types::ServerName::try_from(PRIVATE_FQDN)?;
    let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, conn)
        .await?;

    // Plain hyper on top.
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls_stream)).await?;
    let driver = tokio::spawn(driver);
    let token = cluster_user_token(&sandbox)?;
    let request = http::Request::get("/version")
        .header(http::header::HOST, PRIVATE_FQDN)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("GET https://{PRIVATE_FQDN}/version -> {status}");
    println!("{}", String::from_utf8_lossy(&body));

    // Dropping the HTTP connection ends the stream; close() deletes every session in any case.
    drop(sender);
    let _ = driver.await;
    let undeleted = tunnel.close().await;
    println!(
        "Closed; sessions left in the emulator: {}",
        sandbox.bastion().active_sessions().len() + undeleted
    );
    sandbox.shutdown().await;
    Ok(())
}

/// The bearer token of the cluster's user kubeconfig, as the emulated ARM hands it out.
fn cluster_user_token(sandbox: &Sandbox) -> Result<String, Error> {
    let id = PRIVATE_CLUSTER.parse()?;
    let access = sandbox
        .arm()
        .fixtures()
        .cluster_access(&id)
        .cloned()
        .ok_or("the sandbox cluster has no credentials")?;
    Ok(access.user_token)
}
