//! An ARM token that ARM refuses (401: expired, revoked, another tenant) is not used again:
//! the request is retried once with a fresh token from the credential; a credential that keeps
//! handing out refused tokens ends in an authentication error after that one retry.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use bastion_arm::ArmClient;
use common::*;

/// Hands out `tokens` in turn (the last one from then on), counting the calls.
#[derive(Debug)]
struct Rotating {
    tokens: Vec<String>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for Rotating {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let token = &self.tokens[n.min(self.tokens.len() - 1)];
        Ok(AccessToken::new(
            token.clone(),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

fn client_rotating(
    emu: &bastion_emulator::ArmEmulator,
    tokens: Vec<String>,
) -> (ArmClient, Arc<Rotating>) {
    let credential = Arc::new(Rotating {
        tokens,
        calls: AtomicUsize::new(0),
    });
    let arm = ArmClient::new(emu.client_config(), credential.clone()).unwrap();
    (arm, credential)
}

#[tokio::test]
async fn a_refused_token_is_replaced_by_a_fresh_one_and_the_call_succeeds() {
    let emu = start().await;
    // The first token is for another tenant: ARM answers 401. The next one is good.
    let (arm, credential) = client_rotating(
        &emu,
        vec![token(OTHER_TENANT, ALICE), emu.token_for(ALICE).unwrap()],
    );
    let bastion = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap();
    assert_eq!(bastion.name, "bastion-1");
    assert_eq!(
        credential.calls.load(Ordering::SeqCst),
        2,
        "a fresh token was asked for"
    );
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200]);
    // The fresh token stays in use: the next call needs no other.
    arm.get_bastion(&id(&bastion_id("bastion-2")))
        .await
        .unwrap();
    assert_eq!(credential.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn tokens_refused_again_and_again_are_an_authentication_error_after_one_retry() {
    let emu = start().await;
    let (arm, credential) = client_rotating(&emu, vec![token(OTHER_TENANT, ALICE)]);
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert!(err.is_authentication_failed(), "{err}");
    assert_eq!(err.status(), Some(401));
    assert_eq!(credential.calls.load(Ordering::SeqCst), 2);
    assert_eq!(emu.requests().len(), 2, "one retry, not a loop");
}
