//! The Developer SKU path (data-pod lookup, `/omni/webtunnel/`, one connection at a time) and
//! IP connect (`bh-hostConnect` resource id plus `hostname`).
use crate::common;

use std::net::IpAddr;

use bastion_core::{EndpointKind, Target, Tunnel};
use bastion_emulator::{BastionFixture, Faults};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_sku_goes_through_the_data_pod() {
    let h = Harness::start_with(BastionFixture::developer(TENANT), |c| c).await;
    h.emulator.set_faults(Faults {
        connection_whitespace: true,
        ..Faults::none()
    });
    let mut config = h.config(h.vm_target());
    config.kind = EndpointKind::Developer;
    let tunnel = Tunnel::new(config, credential()).unwrap();
    let served = Served::start(tunnel).await;
    // Three clients at once: the Developer SKU takes one connection at a time, the rest queue.
    let port = served.port;
    let clients: Vec<_> = (0..3u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = random_bytes(50_000, 20 + i);
                let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                echo_round_trip(s, &data).await == data
            })
        })
        .collect();
    for c in clients {
        assert!(c.await.unwrap());
    }
    served.stop().await;
    h.assert_all_sessions_deleted().await;
    let stats = h.emulator.stats();
    assert_eq!(
        stats.connection_lookups, 1,
        "the data pod is looked up once per command"
    );
    // Each session was deleted before the next WebSocket opened.
    let mut sessions = h.emulator.sessions();
    sessions.sort_by_key(|s| s.ws_connected_at);
    assert_eq!(sessions.len(), 3);
    for pair in sessions.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert!(
            prev.deleted_at.unwrap() <= next.ws_connected_at.unwrap(),
            "Developer connections overlapped: {prev:?} / {next:?}"
        );
    }
}

#[tokio::test]
async fn developer_sku_rejects_other_ports_and_ip_connect_unless_asked() {
    let h = Harness::start_with(BastionFixture::developer(TENANT), |c| c).await;
    let mut config = h.config(Target::resource(&h.vm, 8080).unwrap());
    config.kind = EndpointKind::Developer;
    let err = Tunnel::new(config.clone(), credential()).unwrap_err();
    assert!(err.to_string().contains("only ports 22 and 3389"), "{err}");
    config.allow_any_port = true;
    assert!(Tunnel::new(config, credential()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_connect_reaches_the_address_through_bh_host_connect() {
    let h = Harness::start_with(BastionFixture::standard(TENANT).ip_connect(true), |c| {
        c.ip_connect_ports(None)
    })
    .await;
    let ip: IpAddr = h.echo.ip();
    let target = Target::ip_connect(&h.bastion.id, ip, h.echo.port()).unwrap();
    let mut config = h.config(target);
    config.allow_any_port = true;
    let tunnel = Tunnel::new(config, credential()).unwrap();
    let data = random_bytes(100_000, 30);
    let conn = tunnel.connect().await.unwrap();
    assert_eq!(echo_round_trip(conn, &data).await, data);
    h.assert_all_sessions_deleted().await;
    let sessions = h.emulator.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(
        sessions[0]
            .resource_id
            .contains("/bh-hostConnect/127.0.0.1")
    );
    assert_eq!(sessions[0].hostname.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn ip_connect_on_a_bastion_without_it_is_refused_by_the_service() {
    let h = Harness::start().await;
    let target = Target::ip_connect(&h.bastion.id, h.echo.ip(), 22).unwrap();
    let tunnel = Tunnel::new(h.config(target), credential()).unwrap();
    let err = tunnel.connect().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(
        err.to_string()
            .contains("IP-based connection is not enabled on this Bastion"),
        "{err}"
    );
    // Refused at the token exchange: no session was ever minted.
    let stats = h.emulator.stats();
    assert_eq!(
        (stats.token_requests, stats.tokens_issued),
        (1, 0),
        "{stats:?}"
    );
    assert!(h.emulator.sessions().is_empty());
}

/// A port outside 22 and 3389 over IP connect: refused before anything is sent unless
/// `allow_any_port`; with it, the service's own port list (22 and 3389 by default) refuses it.
#[tokio::test]
async fn ip_connect_to_another_port_is_refused_unless_any_port_is_allowed() {
    let h = Harness::start_with(BastionFixture::standard(TENANT).ip_connect(true), |c| c).await;
    let port = h.echo.port();
    assert!(port != 22 && port != 3389);
    let target = Target::ip_connect(&h.bastion.id, h.echo.ip(), port).unwrap();
    let mut config = h.config(target);
    let err = Tunnel::new(config.clone(), credential()).unwrap_err();
    assert!(
        matches!(
            err,
            bastion_core::Error::PortNotAllowed { port: p, by: "IP connect" } if p == port
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "IP connect allows only ports 22 and 3389 by default, not {port}"
        )),
        "{err}"
    );
    assert_eq!(h.emulator.stats().token_requests, 0);

    config.allow_any_port = true;
    let tunnel = Tunnel::new(config, credential()).unwrap();
    let err = tunnel.connect().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(
        err.to_string().contains("Custom ports are not allowed"),
        "{err}"
    );
    let stats = h.emulator.stats();
    assert_eq!(
        (stats.token_requests, stats.tokens_issued),
        (1, 0),
        "{stats:?}"
    );
    assert!(h.emulator.sessions().is_empty());
}
