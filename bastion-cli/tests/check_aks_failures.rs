//! `bastion check aks` on clusters that cannot work: the failing row, its fix, and exit code 4
//! (pre-flight failed).

use crate::common;

use bastion_arm::ResourceId;
use bastion_emulator::sandbox::{
    BASIC_BASTION, HUB_BASTION, NO_BASTION_READER, PRIVATE_CLUSTER_NO_PUBLIC_FQDN,
};
use common::{ArmSandbox, assert_check_failed, assert_check_passed, check, myaks_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_without_reader_on_the_bastion_gets_the_role_row() {
    let s = ArmSandbox::start().await;
    let (out, stdout) = check(
        &myaks_args(&["aks"], &["--bastion", HUB_BASTION]),
        &s.env_as(NO_BASTION_READER),
    )
    .await;
    let (rows, err) = assert_check_failed(&out, &stdout, "R3");
    assert!(rows.contains("Reader on the Bastion"), "{rows}");
    assert!(
        rows.contains("fix: ask for the 'Reader' role") && rows.contains(HUB_BASTION),
        "{rows}"
    );
    assert!(err.contains("pre-flight check failed: R3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_sku_bastion_fails_the_native_client_row() {
    let s = ArmSandbox::start().await;
    let (out, stdout) = check(
        &myaks_args(&["aks"], &["--bastion", BASIC_BASTION]),
        &s.env(),
    )
    .await;
    let (rows, _) = assert_check_failed(&out, &stdout, "N1");
    assert!(rows.contains("Basic SKU"), "{rows}");
    assert!(
        rows.contains("fix: az network bastion update --name basic-bastion --resource-group lab-rg --sku Standard --enable-tunneling true"),
        "{rows}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_fqdn_disabled_cluster_without_dns_link_fails_the_dns_row() {
    let s = ArmSandbox::start().await;
    // privaks resolves only through its private DNS zone: unlink the zone from the hub VNet,
    // where the Bastion is.
    let cluster = ResourceId::parse(PRIVATE_CLUSTER_NO_PUBLIC_FQDN).unwrap();
    let removed = s.sandbox.arm().with_fixtures(|f| {
        let links: Vec<ResourceId> = f
            .resources()
            .map(|(id, _)| id.clone())
            .filter(|id| {
                id.as_str().contains("/virtualNetworkLinks/hub-link")
                    && id
                        .as_str()
                        .contains(&format!("MC_aks-rg_{}_eastus", cluster.name()))
            })
            .collect();
        links.iter().filter(|id| f.remove_resource(id)).count()
    });
    assert_eq!(
        removed, 1,
        "the sandbox should link privaks' zone to the hub VNet"
    );

    let (out, stdout) = check(&["aks", "-n", "privaks", "-g", "aks-rg"], &s.env()).await;
    let (rows, _) = assert_check_failed(&out, &stdout, "N3");
    assert!(rows.contains("public FQDN disabled"), "{rows}");
    assert!(rows.contains("fix:"), "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_passes_with_exit_code_zero() {
    let s = ArmSandbox::start().await;
    let (out, stdout) = check(&myaks_args(&["aks"], &[]), &s.env()).await;
    assert_check_passed(&out, &stdout, &["PASS    N1"]);
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
