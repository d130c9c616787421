//! A principal without the needed role gets 403 AuthorizationFailed naming the action and scope.

use crate::common;

use common::*;

#[tokio::test]
async fn reader_elsewhere_is_refused_with_action_and_scope() {
    let emu = start().await;
    let arm = client(&emu, BOB);
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert!(err.is_authorization_failed(), "{err}");
    assert_eq!(err.code(), Some("AuthorizationFailed"));
    let message = err.message().unwrap();
    assert!(message.contains("bob@contoso.test"), "{message}");
    assert!(
        message.contains("'Microsoft.Network/bastionHosts/read'"),
        "{message}"
    );
    assert!(
        message.contains(&format!("over scope '{}'", bastion_id("bastion-1"))),
        "{message}"
    );
    // The rendered error keeps ARM's message and says what to do.
    let text = err.to_string();
    assert!(
        text.contains("Microsoft.Network/bastionHosts/read"),
        "{text}"
    );
    assert!(text.contains("role assignment"), "{text}");
}

#[tokio::test]
async fn reader_may_read_but_not_list_credentials() {
    let emu = start().await;
    let arm = client(&emu, BOB);
    let cluster = id(CLUSTER);
    arm.get_cluster(&cluster).await.unwrap();
    let err = arm
        .list_cluster_user_credential(&cluster, None)
        .await
        .unwrap_err();
    assert!(err.is_authorization_failed());
    assert!(
        err.message().unwrap().contains(
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
        )
    );
    // Listing needs read on the resource group: Bob has it on aks-rg, not on hub-rg.
    let err = arm.list_bastions_in_group(SUB, "hub-rg").await.unwrap_err();
    assert!(err.is_authorization_failed());
    assert!(
        err.message()
            .unwrap()
            .contains(&format!("/subscriptions/{SUB}/resourceGroups/hub-rg'"))
    );
}
