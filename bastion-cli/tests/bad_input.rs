//! Bad input never panics: one line `error: <what> — <what to do>` on stderr, the documented
//! exit code, no backtrace (RUST_BACKTRACE=1 is set for every run).

use crate::common;

use bastion_emulator::sandbox::HUB_BASTION;
use common::{ArmSandbox, CoreSandbox, assert_clean_error, myaks_args, run, run_command};

const VM: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/vm-rg/providers/Microsoft.Compute/virtualMachines/vm1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bastion_is_not_found() {
    let s = ArmSandbox::start().await;
    let out = run(
        &[
            "tunnel",
            "-n",
            "no-such-bastion",
            "-g",
            "hub-rg",
            "--subscription",
            "11111111-1111-1111-1111-111111111111",
            "--target-resource-id",
            VM,
            "--resource-port",
            "22",
        ],
        &s.env(),
    )
    .await;
    let line = assert_clean_error(&out, 3);
    assert!(
        line.contains("Bastion 'no-such-bastion' not found"),
        "{line}"
    );
    assert!(line.contains("check --name"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bastion_name_for_a_cluster_is_not_found() {
    let s = ArmSandbox::start().await;
    let out = run_command(s.aks(&["--bastion", "no-such-bastion", "--", "true"])).await;
    let line = assert_clean_error(&out, 3);
    assert!(
        line.contains("no Bastion named 'no-such-bastion'"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resource_id_is_a_usage_error() {
    let out = run(
        &[
            "tunnel",
            "--bastion-endpoint",
            "bst-1.bastion.test",
            "--target-resource-id",
            "/subscriptions/x/resourceGroups/rg/virtualMachines/vm1",
            "--resource-port",
            "22",
        ],
        &[],
    )
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("invalid --target-resource-id"), "{line}");
    // What is wrong with it, then what a valid one looks like.
    assert!(
        line.contains("the providers segment is missing — "),
        "{line}"
    );
    assert!(
        line.contains("/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bastion_id_is_a_usage_error() {
    let s = ArmSandbox::start().await;
    let out = run(
        &myaks_args(&["check", "aks"], &["--bastion", "/subscriptions/oops"]),
        &s.env(),
    )
    .await;
    assert_clean_error(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_names_the_port() {
    let sandbox = CoreSandbox::start().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run_command(sandbox.tunnel(&["--port", &port])).await;
    let line = assert_clean_error(&out, 2);
    assert!(
        line.contains(&format!("local port {port} is already in use")),
        "{line}"
    );
    assert!(line.contains("choose another --port"), "{line}");
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_address_on_a_bastion_without_ip_connect_fails_the_preflight() {
    let s = ArmSandbox::start().await;
    let out = run(
        &[
            "tunnel",
            "-n",
            HUB_BASTION,
            "--target-ip-address",
            "10.1.0.4",
            "--resource-port",
            "22",
        ],
        &s.env(),
    )
    .await;
    let line = assert_clean_error(&out, 4);
    assert!(
        line.contains("IP connect is not enabled on Bastion 'hub-bastion'"),
        "{line}"
    );
    assert!(line.contains("--enable-ip-connect true"), "{line}");
    assert!(
        s.sandbox.bastion().sessions().is_empty(),
        "no session may be minted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_an_ip_address_is_a_usage_error() {
    let out = run(
        &[
            "tunnel",
            "--bastion-endpoint",
            "bst-1.bastion.test",
            "--target-ip-address",
            "vm1.internal",
            "--resource-port",
            "22",
        ],
        &[],
    )
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("not an IP address"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bastion_endpoint_is_a_usage_error() {
    for endpoint in [
        "https://bst-1.bastion.test/path",
        "bst-1.bastion.test:notaport",
        "bst 1",
        "",
    ] {
        let out = run(
            &[
                "tunnel",
                "--bastion-endpoint",
                endpoint,
                "--target-resource-id",
                VM,
                "--resource-port",
                "22",
            ],
            &[],
        )
        .await;
        let line = assert_clean_error(&out, 2);
        assert!(
            line.contains("invalid --bastion-endpoint"),
            "{endpoint:?}: {line}"
        );
        assert!(line.contains("HOST:PORT"), "{endpoint:?}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clap_usage_errors_are_one_line_with_exit_code_2() {
    let out = run(&["tunnel", "--bastion-endpoint", "bst-1.bastion.test"], &[]).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("--resource-port"), "{line}");
    let out = run(
        &[
            "tunnel",
            "--resource-port",
            "99999",
            "--target-resource-id",
            VM,
        ],
        &[],
    )
    .await;
    assert_clean_error(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_for_token_auth_is_explained() {
    let out = run(
        &[
            "tunnel",
            "--auth",
            "token",
            "--bastion-endpoint",
            "bst-1.bastion.test",
            "--target-resource-id",
            VM,
            "--resource-port",
            "22",
        ],
        &[],
    )
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("BASTION_TOKEN"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_an_auth_failure() {
    let sandbox = CoreSandbox::start().await;
    let expired = bastion_emulator::TestClaims::new(bastion_emulator::TEST_TENANT, "u")
        .expired()
        .mint();
    // The tunnel starts (the token is only used per connection), so use the proxy: its one
    // connection is refused.
    let mut cmd = sandbox.command(&["proxy"], &[]);
    cmd.env("BASTION_TOKEN", &expired);
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 5);
    assert!(!line.contains(&expired), "the token must never be printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_fails_before_any_azure_call() {
    let s = ArmSandbox::start().await;
    let out = run_command(s.aks(&["--", "no-such-program-xyz", "get", "pods"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(
        line.contains("cannot find the command `no-such-program-xyz`"),
        "{line}"
    );
    assert!(s.sandbox.arm().requests().is_empty(), "ARM was called");
}
