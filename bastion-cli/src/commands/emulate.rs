//! `bastion emulate`: the whole local sandbox (ARM, Bastion data plane, Kubernetes API
//! stand-in, a VM with echo and HTTP servers) and the environment that points the other
//! commands at it, on stdout; runs until Ctrl-C / SIGTERM.

use std::net::IpAddr;

use bastion_emulator::sandbox::{HUB_BASTION, SPOKE_SUBSCRIPTION};
use bastion_emulator::{CONTROL_SECRET_HEADER, Sandbox};
use serde_json::json;

use crate::cli::EmulateArgs;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::output::Output;
use crate::signals::Signals;
use bastion_emulator::sandbox_vm::{self, SandboxVm};

/// The sandbox and its VM, with the environment a user exports.
pub struct Running {
    /// The ARM, Bastion and Kubernetes emulators.
    pub sandbox: Sandbox,
    /// The VM behind its own Bastion.
    pub vm: SandboxVm,
    /// Holds the CA file.
    pub dir: tempfile::TempDir,
    /// `(name, value)` pairs, in print order.
    pub env: Vec<(String, String)>,
}

/// Starts everything and computes the environment.
pub async fn start() -> CliResult<Running> {
    let fail =
        |what: &str, e: String| CliError::new(Code::Other, format!("cannot start the {what}: {e}"));
    let sandbox = Sandbox::start()
        .await
        .map_err(|e| fail("sandbox", e.to_string()))?;
    let vm = SandboxVm::add_to(&sandbox)
        .await
        .map_err(|e| fail("sandbox VM", e.to_string()))?;
    // Private (0700): it holds the sandbox's CA for as long as the sandbox runs.
    let dir = tempfile::Builder::new()
        .prefix("bastion-sandbox-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| fail("sandbox", e.to_string()))?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, sandbox.ca_pem()).map_err(|e| fail("sandbox", e.to_string()))?;
    let mut resolve = sandbox.resolve();
    resolve.extend(vm.resolve());
    let env = vec![
        (
            "BASTION_ARM_ENDPOINT".to_owned(),
            sandbox.arm_endpoint().to_string(),
        ),
        ("BASTION_CA_FILE".to_owned(), ca_file.display().to_string()),
        ("BASTION_RESOLVE".to_owned(), resolve_list(&resolve)),
        ("BASTION_AUTH".to_owned(), "token".to_owned()),
        ("BASTION_TOKEN".to_owned(), sandbox.default_token()),
        (
            "AZURE_SUBSCRIPTION_ID".to_owned(),
            SPOKE_SUBSCRIPTION.to_owned(),
        ),
    ];
    Ok(Running {
        sandbox,
        vm,
        dir,
        env,
    })
}

/// The control API's stats URL and secret of the sandbox's Bastion emulator and of the VM's.
fn control_endpoints(running: &Running) -> Vec<(String, String)> {
    [running.sandbox.bastion(), running.vm.bastion()]
        .into_iter()
        .filter_map(|b| {
            let dns = &b.config().bastions.first()?.dns_name;
            Some((
                format!("https://{}/_emulator/stats", b.endpoint_for(dns)),
                b.control_secret().to_owned(),
            ))
        })
        .collect()
}

/// For `--auth managed-identity` and `--auth client-secret`: the command line, with the
/// variables that point the credential at the sandbox's identity emulator.
fn credential_examples(running: &Running) -> Vec<(&'static str, String)> {
    ["managed-identity", "client-secret"]
        .into_iter()
        .map(|method| {
            let vars = running
                .sandbox
                .identity_env(method, None)
                .into_iter()
                .map(|(k, v)| format!("{k}='{v}'"))
                .collect::<Vec<_>>()
                .join(" ");
            (
                method,
                format!(
                    "env {vars} bastion --auth {method} aks -n aadaks -g aks-rg -- kubectl get pods"
                ),
            )
        })
        .collect()
}

/// Writes `text` to `path` with mode 0600 (a new file; an existing one is truncated and has its
/// mode set to 0600).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// `host=ip,host=ip`.
pub fn resolve_list(resolve: &[(String, IpAddr)]) -> String {
    resolve
        .iter()
        .map(|(h, ip)| format!("{h}={ip}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Commands to try against the sandbox.
pub fn examples(echo_port: u16) -> Vec<String> {
    vec![
        "bastion aks -n myaks -g aks-rg -- kubectl get pods".to_owned(),
        "bastion check aks -n privaks -g aks-rg".to_owned(),
        format!(
            "bastion check aks -n myaks -g aks-rg --bastion {}",
            bastion_emulator::sandbox::BASIC_BASTION
        ),
        format!(
            "bastion tunnel -n {} -g {} --target-resource-id {} --resource-port 80 --port 8080   # then: curl http://localhost:8080/",
            sandbox_vm::VM_BASTION,
            sandbox_vm::VM_RESOURCE_GROUP,
            sandbox_vm::vm_id()
        ),
        format!(
            "bastion tunnel -n {} -g {} --target-resource-id {} --resource-port 22 --port 2222   # an echo server: nc localhost 2222",
            sandbox_vm::VM_BASTION,
            sandbox_vm::VM_RESOURCE_GROUP,
            sandbox_vm::vm_id()
        ),
        format!(
            "bastion tunnel -n {} -g {} --target-resource-id {} --resource-port 22   # the same VM through a Developer SKU Bastion",
            sandbox_vm::VM_DEV_BASTION,
            sandbox_vm::VM_RESOURCE_GROUP,
            sandbox_vm::vm_id()
        ),
        format!(
            "bastion tunnel -n {} -g {} --target-ip-address 127.0.0.1 --resource-port {echo_port} --allow-any-port   # IP connect to the same echo server",
            sandbox_vm::VM_BASTION,
            sandbox_vm::VM_RESOURCE_GROUP,
        ),
        format!(
            "bastion tunnel -n {HUB_BASTION} --target-resource-id {} --resource-port 443",
            bastion_emulator::sandbox::PRIVATE_CLUSTER
        ),
    ]
}

/// Runs `bastion emulate`.
pub async fn run(out: Output, args: &EmulateArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    let running = start().await?;
    let mut text =
        String::from("# The bastion sandbox: export these, then run bastion as usual.\n");
    for (k, v) in &running.env {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    text.push_str("# Try:\n");
    for e in examples(running.vm.echo_addr().port()) {
        text.push_str(&format!("#   {e}\n"));
    }
    // The control API of each Bastion emulator (docs/protocol.md#control-api), for scripts that
    // check what a run left behind (scripts/bench.sh asks it whether any session is left).
    let control = control_endpoints(&running);
    for (url, secret) in &control {
        text.push_str(&format!(
            "# Control API: {url} with header {CONTROL_SECRET_HEADER}: {secret}\n"
        ));
    }
    // The other credential kinds, against the sandbox's identity emulator: the AAD-only
    // cluster `aadaks` then authenticates kubectl through `bastion kube-token` with the same
    // credential.
    let credentials = credential_examples(&running);
    text.push_str("# Other credentials (the identity emulator issues their tokens):\n");
    for (method, line) in &credentials {
        text.push_str(&format!("#   --auth {method}: {line}\n"));
    }
    text.push_str("# The sandbox runs until Ctrl-C.\n");
    if let Some(path) = &args.env_file {
        // The file holds the sandbox's token: readable by its owner only.
        write_private(path, &text).map_err(|e| {
            CliError::usage(format!("cannot write {}: {e}", path.display()))
                .hint("choose a writable --env-file path")
        })?;
    }
    let env: serde_json::Map<String, serde_json::Value> = running
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    out.result(
        text,
        json!({
            "event": "environment",
            "env": env,
            "examples": examples(running.vm.echo_addr().port()),
            "credentials": credentials
                .iter()
                .map(|(method, line)| json!({"auth": method, "example": line}))
                .collect::<Vec<_>>(),
            "control": control
                .iter()
                .map(|(url, secret)| json!({"url": url, "header": CONTROL_SECRET_HEADER, "secret": secret}))
                .collect::<Vec<_>>(),
        }),
    );
    let sig = signals.recv().await;
    out.info(format!("{}: stopping the sandbox", sig.name()));
    signals.exit_on_next(out.quiet);
    running.vm.shutdown().await;
    running.sandbox.shutdown().await;
    drop(running.dir);
    Ok(Outcome::Success)
}
