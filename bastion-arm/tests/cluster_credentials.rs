//! listClusterUserCredential returns a kubeconfig whose server is the private FQDN (or the
//! public one with server-fqdn=public), trusting the test CA; admin credentials are refused
//! when local accounts are disabled.

use crate::common;

use base64::Engine as _;
use common::*;

#[tokio::test]
async fn user_credentials_point_at_the_private_fqdn() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let creds = arm
        .list_cluster_user_credential(&id(CLUSTER), None)
        .await
        .unwrap();
    assert_eq!(creds.kubeconfigs[0].name, "clusterUser");
    let yaml = creds.decode_first().unwrap();
    let config: yaml_serde::Value = yaml_serde::from_str(&yaml).unwrap();
    let cluster = &config["clusters"][0]["cluster"];
    assert_eq!(
        cluster["server"].as_str().unwrap(),
        format!("https://{PRIVATE_FQDN}:443")
    );
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), emu.ca_pem());
    let access = emu
        .with_fixtures(|f| f.cluster_access(&id(CLUSTER)).cloned())
        .unwrap();
    assert_eq!(
        config["users"][0]["user"]["token"].as_str().unwrap(),
        access.user_token
    );

    let log = emu.requests();
    assert_eq!(log[0].method, "POST");
    assert!(log[0].path.ends_with("/listClusterUserCredential"));
    assert_eq!(log[0].query, "api-version=2025-10-01");
}

#[tokio::test]
async fn server_fqdn_public_gives_the_public_fqdn() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let yaml = arm
        .list_cluster_user_credential(&id(CLUSTER), Some("public"))
        .await
        .unwrap()
        .decode_first()
        .unwrap();
    assert!(
        yaml.contains(&format!("server: https://{PUBLIC_FQDN}:443")),
        "{yaml}"
    );
    assert!(emu.requests()[0].query.contains("server-fqdn=public"));
}

#[tokio::test]
async fn admin_credentials_with_local_accounts_disabled_are_a_bad_request() {
    let emu = start().await;
    let arm = client(&emu, ALICE);
    let err = arm
        .list_cluster_admin_credential(&id(CLUSTER), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("BadRequest"));
    assert!(err.is_local_accounts_disabled(), "{err}");
    assert!(
        err.to_string()
            .contains("local accounts disabled: use the user credentials"),
        "{err}"
    );

    emu.with_fixtures(|f| {
        f.update_resource(&id(CLUSTER), |doc| {
            doc["properties"]["disableLocalAccounts"] = false.into();
        })
    });
    let yaml = arm
        .list_cluster_admin_credential(&id(CLUSTER), None)
        .await
        .unwrap()
        .decode_first()
        .unwrap();
    assert!(yaml.contains("clusterAdmin_aks-rg_myaks"), "{yaml}");
}
