//! `bastion check tunnel`: the gate rows for a VM tunnel (SKU, native client, IP connect,
//! Developer ports) and the role rows, with exit code 4 when one fails.

use crate::common;

use bastion_emulator::sandbox::{
    BASIC_BASTION, DEVELOPER_BASTION, HUB_BASTION, PREMIUM_BASTION, PRIVATE_CLUSTER,
};
use common::{ArmSandbox, assert_check_failed, assert_check_passed, check};

const VM: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/lab-rg/providers/Microsoft.Compute/virtualMachines/vm1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_gates_show_their_fix() {
    let s = ArmSandbox::start().await;
    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["-n", BASIC_BASTION, "--target-resource-id", VM],
            "Basic SKU",
            "--sku Standard --enable-tunneling true",
        ),
        (
            &["-n", HUB_BASTION, "--target-ip-address", "10.1.0.4"],
            "IP connect is not enabled",
            "--enable-ip-connect true",
        ),
        (
            &[
                "-n",
                DEVELOPER_BASTION,
                "--target-resource-id",
                PRIVATE_CLUSTER,
                "--resource-port",
                "443",
            ],
            "only tunnels to ports 22 and 3389",
            "Standard or Premium",
        ),
    ];
    for (args, why, fix) in cases {
        let mut all = vec!["tunnel"];
        all.extend_from_slice(args);
        let (out, stdout) = check(&all, &s.env()).await;
        let (_, line) = assert_check_failed(&out, &stdout, "N1");
        assert!(stdout.contains(why), "{args:?}: {why:?} missing:\n{stdout}");
        assert!(stdout.contains(fix), "{args:?}: {fix:?} missing:\n{stdout}");
        assert!(line.contains("bastion check tunnel"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_premium_bastion_with_ip_connect_passes() {
    let s = ArmSandbox::start().await;
    let (out, stdout) = check(
        &[
            "tunnel",
            "-n",
            PREMIUM_BASTION,
            "--target-ip-address",
            "10.9.0.4",
        ],
        &s.env(),
    )
    .await;
    assert_check_passed(&out, &stdout, &["PASS    N1", "PASS    R3"]);
}
