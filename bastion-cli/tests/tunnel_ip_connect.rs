//! IP connect through the CLI: `bastion tunnel --target-ip-address` on a Bastion with IP
//! connect on opens sessions for the address (the token POST's `hostname`) and relays to it.

use crate::common;

use bastion_emulator::SandboxVm;
use bastion_emulator::sandbox_vm::{VM_BASTION, VM_RESOURCE_GROUP};
use common::{ArmSandbox, WAIT, command, connect, round_trip, start_tunnel};
use rustix::process::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_to_an_ip_address_relays_and_deletes_its_sessions() {
    let s = ArmSandbox::start().await;
    let vm = SandboxVm::add_to(&s.sandbox).await.unwrap();
    // The sandbox's environment, with the VM's Bastion resolved as well.
    let mut env = s.env();
    let resolve: Vec<String> = s
        .sandbox
        .resolve()
        .into_iter()
        .chain(vm.resolve())
        .map(|(h, ip)| format!("{h}={ip}"))
        .collect();
    for (k, v) in &mut env {
        if k == "BASTION_RESOLVE" {
            *v = resolve.join(",");
        }
    }
    let echo_port = vm.echo_addr().port().to_string();
    let cmd = command(
        &[
            "tunnel",
            "-n",
            VM_BASTION,
            "-g",
            VM_RESOURCE_GROUP,
            "--target-ip-address",
            "127.0.0.1",
            "--resource-port",
            &echo_port,
            "--allow-any-port",
        ],
        &env,
    );
    let (mut run, port) = start_tunnel(cmd).await;
    let mut conn = connect(port).await;
    assert_eq!(
        round_trip(&mut conn, b"over IP connect").await,
        b"over IP connect"
    );
    drop(conn);

    let sessions = vm.bastion().sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].hostname.as_deref(), Some("127.0.0.1"));
    assert_eq!(sessions[0].port, vm.echo_addr().port());

    run.signal(Signal::TERM);
    let status = run.wait(WAIT).await;
    assert!(status.success(), "{}", run.stderr());
    vm.bastion().assert_no_orphans();
}
