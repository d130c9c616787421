//! A missing Bastion, resource group or subscription is a typed not-found error that names the
//! id and the subscription and keeps ARM's code and message.

use crate::common;

use common::*;

#[tokio::test]
async fn missing_bastion_is_resource_not_found_with_the_id_and_subscription() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let err = arm.get_bastion(&id(&bastion_id("nope"))).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("ResourceNotFound"));
    assert!(
        err.message().unwrap().contains("bastionHosts/nope"),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&bastion_id("nope")), "{text}");
    assert!(text.contains(SUB), "{text}");
    assert!(err.request_id().is_some());
}

#[tokio::test]
async fn missing_resource_group_and_subscription_have_their_own_codes() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let err = arm
        .get_bastion_by_name(SUB, "no-such-rg", "b")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some("ResourceGroupNotFound"));

    let err = arm
        .list_bastions_in_subscription("99999999-9999-9999-9999-999999999999")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some("SubscriptionNotFound"));
}

#[tokio::test]
async fn ids_match_case_insensitively_and_come_back_as_stored() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let cluster = arm
        .get_cluster_by_name(&SUB.to_uppercase(), "AKS-RG", "MYAKS")
        .await
        .unwrap();
    assert_eq!(cluster.id.as_str(), CLUSTER);
    let bastion = arm
        .get_bastion(&id(
            &bastion_id("BASTION-1").replace("resourceGroups", "RESOURCEGROUPS")
        ))
        .await
        .unwrap();
    assert_eq!(bastion.id.as_str(), bastion_id("bastion-1"));
}
