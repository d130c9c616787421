//! 5xx answers and dropped connections are retried a bounded number of times; a persistent
//! 500 ends in a typed server error with the request id.

use crate::common;

use bastion_emulator::Fault;
use common::*;

#[tokio::test]
async fn two_transient_500s_then_success() {
    let emu = start().await;
    emu.inject(Fault::transient("/managedclusters/myaks", 500, 2));
    let arm = client(&emu, ALICE);
    let cluster = arm.get_cluster(&id(CLUSTER)).await.unwrap();
    assert_eq!(cluster.id.as_str(), CLUSTER);
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn persistent_500_is_a_server_error_with_the_arm_message() {
    let emu = start().await;
    emu.inject(Fault::error(
        "/managedclusters/myaks",
        500,
        "InternalServerError",
        "Something broke inside the RP.",
    ));
    let arm = client(&emu, ALICE);
    let err = arm.get_cluster(&id(CLUSTER)).await.unwrap_err();
    assert!(err.is_server_error(), "{err}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.message(), Some("Something broke inside the RP."));
    assert!(err.request_id().is_some());
    assert!(err.to_string().contains("x-ms-request-id"), "{err}");
    assert_eq!(emu.requests().len(), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let emu = start().await;
    emu.inject(Fault::reset_connection("/bastionhosts/bastion-2").times(1));
    let arm = client(&emu, ALICE);
    let bastion = arm
        .get_bastion(&id(&bastion_id("bastion-2")))
        .await
        .unwrap();
    assert_eq!(bastion.name, "bastion-2");
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let emu = start().await;
    let arm = client(&emu, BOB);
    let _ = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert_eq!(emu.requests().len(), 1);
}
