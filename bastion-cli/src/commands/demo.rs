//! `bastion demo`: the main job on the built-in default. Starts the sandbox in-process and runs
//! the `aks` flow against its private cluster with `kubectl get pods` (the real kubectl when it
//! is on PATH, otherwise a built-in HTTPS request through the tunnel), step by step with timings.

use std::path::PathBuf;
use std::time::Instant;

use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::SPOKE_SUBSCRIPTION;
use serde_json::json;

use crate::cli::{AksTargetArgs, DemoArgs};
use crate::commands::aks::{self, Action, Flow};
use crate::commands::{child, kubeclient};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::output::{self, Output};
use crate::signals::Signals;

/// Runs `bastion demo`.
pub async fn run(out: Output, args: &DemoArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    let started = Instant::now();
    out.info(
        "bastion demo: kubectl to an AKS private cluster through an Azure Bastion in a peered hub VNet.\n\
         ARM, the Bastion data plane and the Kubernetes API are emulated on loopback; nothing leaves this machine.\n",
    );

    let step = out.step("sandbox");
    let sandbox = Sandbox::start()
        .await
        .map_err(|e| CliError::new(Code::Other, format!("cannot start the sandbox: {e}")))?;
    step.done(format!(
        "Sandbox up: ARM at {}, Bastion hub-bastion, private cluster myaks",
        sandbox.arm_endpoint()
    ));

    let demo = Context::for_emulator(
        out,
        sandbox.arm_endpoint(),
        sandbox.ca_pem(),
        sandbox.resolve(),
        sandbox.default_token(),
    );
    let kubectl = if args.no_kubectl {
        None
    } else {
        child::find_program("kubectl")
    };
    let action = match &kubectl {
        Some(path) => {
            out.info(format!("Using {} for `kubectl get pods`.", path.display()));
            Action::Command(vec![
                path.display().to_string(),
                "get".to_owned(),
                "pods".to_owned(),
            ])
        }
        None => {
            out.info(
                "kubectl is not on PATH: using the built-in HTTPS client for `kubectl get pods`.",
            );
            Action::InProcess(Box::new(move |kubeconfig: PathBuf| {
                Box::pin(builtin_get_pods(kubeconfig, out))
            }))
        }
    };
    let flow = Flow {
        cluster: AksTargetArgs {
            name: "myaks".to_owned(),
            resource_group: "aks-rg".to_owned(),
            subscription: Some(SPOKE_SUBSCRIPTION.to_owned()),
            bastion: None,
            admin: false,
        },
        port: 0,
        conn: Default::default(),
        context: None,
        public_fqdn: false,
        kubeconfig_path: None,
        write_in_place: false,
        kubeconfig_out: None,
        skip_checks: false,
        no_probe: false,
        kube_auth: crate::cli::KubeAuth::Bastion,
        action,
    };
    out.info("$ bastion aks -n myaks -g aks-rg -- kubectl get pods");
    let result = aks::run_flow(&demo, flow, &mut signals).await;
    let left = sandbox.bastion().active_sessions().len();
    sandbox.shutdown().await;
    let outcome = result?;
    if left > 0 {
        return Err(CliError::new(
            Code::Tunnel,
            format!("{left} Bastion session(s) were left in the emulator"),
        )
        .hint("this is a bug: please report it with the output of `bastion -vv demo`"));
    }
    let ok = outcome == Outcome::Success || outcome == Outcome::Status(0);
    out.event(
        format!(
            "{} No Bastion session left behind, no kubeconfig left on disk. Demo {} in {}.",
            if ok { "✓" } else { "✗" },
            if ok { "finished" } else { "failed" },
            output::duration(started.elapsed())
        ),
        json!({"event": "demo_finished", "ok": ok, "duration_ms": started.elapsed().as_millis() as u64}),
    );
    Ok(outcome)
}

async fn builtin_get_pods(kubeconfig: PathBuf, out: Output) -> CliResult<u8> {
    let rows = kubeclient::get_pods(&kubeconfig, "default").await?;
    out.result(
        kubeclient::render(&rows),
        json!({"event": "pods", "namespace": "default", "pods": rows.iter().map(|r| json!({
            "name": r.name, "ready": r.ready, "status": r.status, "restarts": r.restarts
        })).collect::<Vec<_>>()}),
    );
    Ok(0)
}
