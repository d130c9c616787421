//! The ARM emulator authenticates like ARM: a bearer JWT is required, expired tokens and tokens
//! from another tenant are refused, api-version is required, and nothing can be written.

use crate::common;

use std::time::Duration;

use bastion_emulator::jwt::TestClaims;
use common::*;

fn bastion_path(name: &str) -> String {
    format!("{}?api-version=2024-05-01", bastion_id(name))
}

#[tokio::test]
async fn no_token_is_authentication_failed() {
    let emu = start().await;
    let (status, body) = raw(&emu, "GET", &bastion_path("bastion-1"), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
    let (status, body) = raw(&emu, "GET", &bastion_path("bastion-1"), Some("not-a-jwt")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn expired_token_is_refused_and_the_client_says_so() {
    let emu = start().await;
    let expired = TestClaims::new(TENANT, ALICE).expired().mint();
    let (status, body) = raw(&emu, "GET", &bastion_path("bastion-1"), Some(&expired)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "ExpiredAuthenticationToken");

    emu.clear_requests();
    let arm = client_with_token(&emu, expired);
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert!(
        err.is_authentication_failed() && err.is_token_expired(),
        "{err}"
    );
    assert!(err.to_string().contains("sign in again"), "{err}");
    // One refresh attempt, then the error.
    assert_eq!(emu.requests().len(), 2);
}

#[tokio::test]
async fn token_from_another_tenant_is_refused() {
    let emu = start().await;
    let arm = client_with_token(&emu, token(OTHER_TENANT, ALICE));
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("InvalidAuthenticationTokenTenant"));
    assert!(err.message().unwrap().contains(TENANT));
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let emu = start().await;
    let graph = TestClaims::new(TENANT, ALICE)
        .audience("https://graph.microsoft.com")
        .expires_in(Duration::from_secs(600))
        .mint();
    let (status, body) = raw(&emu, "GET", &bastion_path("bastion-1"), Some(&graph)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationTokenAudience");
}

#[tokio::test]
async fn api_version_is_required_and_can_be_pinned() {
    let emu = start().await;
    let t = emu.token_for(ALICE).unwrap();
    let (status, body) = raw(&emu, "GET", &bastion_id("bastion-1"), Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");

    emu.allow_api_versions("Microsoft.Network/bastionHosts", &["2024-05-01"]);
    let (status, _) = raw(&emu, "GET", &bastion_path("bastion-1"), Some(&t)).await;
    assert_eq!(status, 200);
    let (status, body) = raw(
        &emu,
        "GET",
        &format!("{}?api-version=2019-01-01", bastion_id("bastion-1")),
        Some(&t),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "InvalidApiVersionParameter");
}

#[tokio::test]
async fn writes_are_refused_and_logged() {
    let emu = start().await;
    let t = emu.token_for(ALICE).unwrap();
    for method in ["PUT", "PATCH", "DELETE", "POST"] {
        let (status, _) = raw(&emu, method, &bastion_path("bastion-1"), Some(&t)).await;
        assert_eq!(status, 405, "{method}");
    }
    let methods: Vec<String> = emu.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["PUT", "PATCH", "DELETE", "POST"]);
}

#[tokio::test]
async fn unknown_resource_types_are_invalid_resource_type() {
    let emu = start().await;
    let t = emu.token_for(ALICE).unwrap();
    let (status, body) = raw(
        &emu,
        "GET",
        &format!("/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Compute/virtualMachines/vm1?api-version=2024-07-01"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "InvalidResourceType");
}

#[tokio::test]
async fn request_log_records_principal_subscription_and_can_be_reset() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    arm.get_cluster(&id(CLUSTER)).await.unwrap();
    let log = emu.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].principal.as_deref(), Some(ALICE));
    assert_eq!(log[0].subscription.as_deref(), Some(SUB));
    assert_eq!(log[0].api_version.as_deref(), Some("2025-10-01"));

    // The same log over HTTP, then reset over HTTP.
    let (status, body) = raw(&emu, "GET", "/_emulator/requests", None).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["principal"], ALICE);
    let (status, _) = raw(&emu, "POST", "/_emulator/reset", None).await;
    assert_eq!(status, 200);
    assert!(emu.requests().is_empty());
}
