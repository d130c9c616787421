//! 100 connections ask the credential for a token once: the ARM token is cached and
//! concurrent connections share one refresh (the reference fetches one per connection).
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use bastion_core::Tunnel;
use common::*;
use time::OffsetDateTime;

#[derive(Debug, Default)]
struct CountingCredential {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for CountingCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://management.azure.com/.default"]);
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok(AccessToken::new(
            token(),
            OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_connections_ask_the_credential_once() {
    let h = Harness::start().await;
    let credential = Arc::new(CountingCredential::default());
    let tunnel = Tunnel::new(h.config(h.vm_target()), credential.clone()).unwrap();
    let served = Served::start(tunnel).await;
    let port = served.port;
    let tasks: Vec<_> = (0..100u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = random_bytes(4096, i + 1);
                let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                echo_round_trip(s, &data).await == data
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
    served.stop().await;
    h.assert_all_sessions_deleted().await;
    assert_eq!(h.emulator.stats().tokens_issued, 100);
}
