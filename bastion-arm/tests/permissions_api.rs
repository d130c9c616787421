//! The permissions API reports one entry per assignment at or above the scope, from the same
//! table that drives enforcement; resource and resource-group scopes both work.

use crate::common;

use bastion_arm::access;
use bastion_arm::model::Permission;
use common::*;

#[tokio::test]
async fn permissions_at_resource_and_group_scope() {
    let mut f = fixtures();
    f.assign_role(BOB, CLUSTER, "Azure Kubernetes Service Cluster User Role")
        .unwrap();
    let emu = start_with(f, Default::default()).await;
    let arm = client(&emu, BOB);

    let at_cluster = arm.permissions(&id(CLUSTER)).await.unwrap();
    assert_eq!(at_cluster.len(), 2, "{at_cluster:?}");
    assert!(at_cluster.contains(&Permission::new(&["*/read"], &[])));
    assert!(access::is_allowed(
        &at_cluster,
        "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
    ));

    let at_group = arm
        .permissions(&id(&format!("/subscriptions/{SUB}/resourcegroups/aks-rg")))
        .await
        .unwrap();
    assert_eq!(at_group, vec![Permission::new(&["*/read"], &[])]);

    let at_hub = arm
        .permissions(&id(&format!("/subscriptions/{SUB}/resourceGroups/hub-rg")))
        .await
        .unwrap();
    assert!(at_hub.is_empty());
    // Enforcement agrees with the API.
    assert!(
        arm.list_bastions_in_group(SUB, "hub-rg")
            .await
            .unwrap_err()
            .is_authorization_failed()
    );
}

#[tokio::test]
async fn sdk_style_double_slash_paths_are_normalised() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    // An SDK builds `…/providers/{ns}/{parentResourcePath}/{type}/{name}` with an empty parent path.
    let path = format!(
        "/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network//bastionHosts/bastion-1/providers/Microsoft.Authorization/permissions"
    );
    let entries: Vec<Permission> = arm.list(&path, "2022-04-01").await.unwrap();
    assert_eq!(entries, vec![Permission::new(&["*"], &[])]);
    let log = emu.requests();
    assert!(!log[0].path.contains("//"), "{}", log[0].path);
}
