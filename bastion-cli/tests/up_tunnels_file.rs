//! `bastion up -f tunnels.toml` against the sandbox (ARM, two Bastions, the AKS stand-in and a
//! VM), with the real binary: two VM tunnels, an IP-connect tunnel and an AKS tunnel, traffic
//! through each, JSON events tagged by tunnel; SIGHUP with one tunnel removed (its sessions
//! deleted), one added and one changed while an open connection of an unchanged one survives;
//! a file that no longer parses on SIGHUP keeps the set; SIGTERM deletes every session and puts
//! the kubeconfig back byte for byte. Also the text status lines, and SIGINT.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bastion_arm::testing::USER_KUBECONFIG;
use bastion_emulator::sandbox_vm::{self, HTTP_GREETING, SandboxVm};
use common::{
    ArmSandbox, Running, WAIT, assert_nothing_left_in, command, connect, in_ci, round_trip,
};
use rustix::process::Signal;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// The sandbox with its VM, and the environment pointing `bastion` at both Bastions.
async fn sandbox_with_vm() -> (ArmSandbox, SandboxVm, Vec<(String, String)>) {
    let s = ArmSandbox::start().await;
    let vm = SandboxVm::add_to(&s.sandbox).await.expect("sandbox VM");
    let mut env = s.env();
    let extra: Vec<String> = vm
        .resolve()
        .iter()
        .map(|(h, ip)| format!("{h}={ip}"))
        .collect();
    for (k, v) in &mut env {
        if k == "BASTION_RESOLVE" {
            v.push(',');
            v.push_str(&extra.join(","));
        }
    }
    (s, vm, env)
}

/// The JSON events `bastion --output json up` prints, read line by line.
struct Events {
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Events {
    fn new(stdout: ChildStdout) -> Self {
        Self {
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// The next event, `None` at the end of stdout.
    async fn next(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("an event in time")
            .expect("read stdout")?;
        eprintln!("[bastion stdout] {line}");
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        self.seen.push(value.clone());
        Some(value)
    }

    /// Reads up to the first event matching `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(v) if pred(&v) => return v,
                Some(_) => {}
                None => panic!("stdout ended before {what}; events: {:#?}", self.seen),
            }
        }
    }

    /// Reads up to the `ready` event of `tunnel`.
    async fn ready(&mut self, tunnel: &str) -> Value {
        self.until(&format!("{tunnel} ready"), |v| {
            v["event"] == "ready" && v["tunnel"] == tunnel
        })
        .await
    }
}

fn port_of(ready: &Value) -> u16 {
    ready["port"].as_u64().expect("port") as u16
}

/// A `[[tunnel]]` to the VM through its Bastion, named by name and resource group.
fn vm_tunnel(name: &str, resource_port: u16, extra: &str) -> String {
    format!(
        "[[tunnel]]\nname = \"{name}\"\nbastion = \"{}\"\nresource-group = \"{}\"\ntarget-resource-id = \"{}\"\nresource-port = {resource_port}\nport = 0\n{extra}\n",
        sandbox_vm::VM_BASTION,
        sandbox_vm::VM_RESOURCE_GROUP,
        sandbox_vm::vm_id()
    )
}

/// A `[[tunnel]]` through a Bastion that does not exist.
fn ghost_tunnel() -> String {
    format!(
        "[[tunnel]]\nname = \"ghost\"\nbastion = \"nope\"\nresource-group = \"{}\"\ntarget-resource-id = \"{}\"\nresource-port = 22\nport = 0\n\n",
        sandbox_vm::VM_RESOURCE_GROUP,
        sandbox_vm::vm_id()
    )
}

/// The VM's HTTP server through `port`.
async fn http_get(port: u16) -> String {
    let mut conn = connect(port).await;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: vm1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(WAIT, conn.read_to_string(&mut reply))
        .await
        .expect("HTTP reply in time")
        .unwrap();
    reply
}

fn kubectl() -> Option<&'static str> {
    ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// `kubectl get pods` with `kubeconfig` (curl with the cluster's token where kubectl is missing,
/// except under CI=true).
async fn get_pods(s: &ArmSandbox, kubeconfig: &Path) -> String {
    let mut cmd = match kubectl() {
        Some(k) => {
            let mut cmd = tokio::process::Command::new(k);
            cmd.args(["get", "pods"]);
            cmd
        }
        None => {
            assert!(
                !in_ci(),
                "kubectl is not installed, and CI is set: install kubectl (see .ci/run)"
            );
            eprintln!("\n*** kubectl is NOT installed: falling back to curl ***\n");
            let access = s
                .sandbox
                .arm()
                .fixtures()
                .cluster_access(&bastion_emulator::sandbox::PRIVATE_CLUSTER.parse().unwrap())
                .cloned()
                .expect("cluster access");
            let script = format!(
                "server=$(sed -n 's/^ *server: *//p' \"$KUBECONFIG\" | grep 127.0.0.1 | head -1); \
                 name=$(sed -n 's/^ *tls-server-name: *//p' \"$KUBECONFIG\" | head -1); \
                 port=${{server##*:}}; port=${{port%/}}; \
                 curl -sS --max-time 20 --cacert {ca} --resolve \"$name:$port:127.0.0.1\" \
                   -H 'Authorization: Bearer {token}' \"https://$name:$port/api/v1/namespaces/default/pods\"",
                ca = s.ca_file.path().display(),
                token = access.user_token,
            );
            let mut cmd = tokio::process::Command::new("sh");
            cmd.args(["-c", &script]);
            cmd
        }
    };
    cmd.env("KUBECONFIG", kubeconfig).kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("kubectl in time")
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Active sessions on the VM's Bastion to its port `port`.
fn live_sessions_to(vm: &SandboxVm, port: u16) -> usize {
    vm.bastion()
        .active_sessions()
        .iter()
        .filter(|s| s.port == port)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_serves_reloads_on_sighup_and_sigterm_cleans_up() {
    let (s, vm, env) = sandbox_with_vm().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The AKS tunnel's kubeconfig-out is a user's existing file: it must come back byte for byte.
    let kube_out = dir.path().join("aks.yaml");
    std::fs::write(&kube_out, USER_KUBECONFIG).unwrap();
    let echo_port = vm.echo_addr().port();
    let ip_tunnel = |extra: &str| {
        format!(
            "[[tunnel]]\nname = \"ip\"\nbastion = \"{}\"\ntarget-ip-address = \"127.0.0.1\"\nresource-port = {echo_port}\nallow-any-port = true\nport = 0\n{extra}\n",
            sandbox_vm::vm_bastion_id()
        )
    };
    let aks = "[[tunnel]]\nname = \"aks\"\naks = { name = \"myaks\", resource-group = \"aks-rg\" }\nkubeconfig-out = \"aks.yaml\"\nport = 0\n";
    let file = dir.path().join("tunnels.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbind = \"127.0.0.1\"\n\n{}{}{}{aks}",
            vm_tunnel("ssh", 22, ""),
            vm_tunnel("web", 80, ""),
            ip_tunnel("")
        ),
    )
    .unwrap();

    let mut cmd = command(
        &["--output", "json", "up", "-f", file.to_str().unwrap()],
        &env,
    );
    cmd.env("TMPDIR", tmp.path())
        .env("XDG_STATE_HOME", state.path())
        .stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut events = Events::new(run.child.stdout.take().unwrap());
    let up = events.until("up", |v| v["event"] == "up").await;
    assert_eq!(
        up["tunnels"],
        serde_json::json!(["ssh", "web", "ip", "aks"]),
        "{up}"
    );
    let ready: HashMap<String, Value> = events
        .seen
        .iter()
        .filter(|v| v["event"] == "ready")
        .map(|v| (v["tunnel"].as_str().unwrap().to_owned(), v.clone()))
        .collect();
    assert_eq!(ready.len(), 4, "{:#?}", events.seen);
    assert_eq!(
        ready["aks"]["kubeconfig"].as_str(),
        Some(kube_out.to_str().unwrap())
    );
    assert!(
        ready["ip"]["target"]
            .as_str()
            .unwrap()
            .contains("IP connect")
    );

    // Traffic through each.
    let mut held = connect(port_of(&ready["ssh"])).await;
    assert_eq!(round_trip(&mut held, b"ssh!").await, b"ssh!");
    assert!(
        http_get(port_of(&ready["web"]))
            .await
            .contains(HTTP_GREETING)
    );
    let mut ip = connect(port_of(&ready["ip"])).await;
    assert_eq!(round_trip(&mut ip, b"ip connect").await, b"ip connect");
    drop(ip);
    let pods = get_pods(&s, &kube_out).await;
    assert!(pods.contains("hello-web-7c9d8f6b5d-x2x7q"), "{pods}");
    // The connection events carry their tunnel's name.
    let closed = events
        .until("web's connection closed", |v| {
            v["event"] == "connection_closed" && v["tunnel"] == "web"
        })
        .await;
    assert!(closed["bytes_down"].as_u64().unwrap() > 0, "{closed}");
    events
        .until("ip's connection closed", |v| {
            v["event"] == "connection_closed" && v["tunnel"] == "ip" && v["bytes_up"] == 10
        })
        .await;
    assert!(
        events
            .seen
            .iter()
            .any(|v| v["event"] == "connection_opened" && v["tunnel"] == "ssh")
    );

    // An idle connection through `web`, which the reload removes: its session must go.
    let mut doomed = connect(port_of(&ready["web"])).await;
    events
        .until("the idle web connection", |v| {
            v["event"] == "connection_opened" && v["tunnel"] == "web" && v["id"] == 2
        })
        .await;
    wait_for("the idle web connection's session", || {
        live_sessions_to(&vm, 80) == 1
    })
    .await;

    // SIGHUP: `web` removed, `web2` added, `ip` changed, `ssh` and `aks` unchanged.
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbind = \"127.0.0.1\"\n\n{}{}{}{}{aks}",
            vm_tunnel("ssh", 22, ""),
            ip_tunnel("idle-timeout = 300"),
            vm_tunnel("web2", 22, ""),
            ghost_tunnel()
        ),
    )
    .unwrap();
    run.signal(Signal::HUP);
    let reloaded = events.until("reloaded", |v| v["event"] == "reloaded").await;
    assert_eq!(
        reloaded["added"],
        serde_json::json!(["web2", "ghost"]),
        "{reloaded}"
    );
    assert_eq!(
        reloaded["removed"],
        serde_json::json!(["web"]),
        "{reloaded}"
    );
    assert_eq!(reloaded["changed"], serde_json::json!(["ip"]), "{reloaded}");
    assert_eq!(
        reloaded["unchanged"],
        serde_json::json!(["ssh", "aks"]),
        "{reloaded}"
    );
    // Removed and changed tunnels are stopped before anything starts.
    let web_closed = events
        .until("web closed", |v| {
            v["event"] == "closed" && v["tunnel"] == "web"
        })
        .await;
    assert_eq!(web_closed["undeleted_sessions"], 0);
    let ip_ready = events.ready("ip").await;
    let web2_ready = events.ready("web2").await;
    // A tunnel that cannot start is reported, and the others keep running.
    let ghost = events
        .until("ghost failed", |v| {
            v["event"] == "tunnel_failed" && v["tunnel"] == "ghost"
        })
        .await;
    assert_eq!(ghost["kind"], "not_found", "{ghost}");
    assert!(
        ghost["error"]
            .as_str()
            .unwrap()
            .starts_with("tunnel 'ghost': Bastion 'nope' not found"),
        "{ghost}"
    );
    // The removed tunnel's sessions are deleted, and its idle connection is closed.
    assert_eq!(
        live_sessions_to(&vm, 80),
        0,
        "{:?}",
        vm.bastion().active_sessions()
    );
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, doomed.read(&mut buf))
        .await
        .expect("the removed tunnel's connection ends")
        .unwrap_or(0);
    assert_eq!(n, 0, "the removed tunnel's connection is closed");
    // The unchanged tunnel kept its open connection.
    assert_eq!(round_trip(&mut held, b"still here").await, b"still here");
    let mut web2 = connect(port_of(&web2_ready)).await;
    assert_eq!(round_trip(&mut web2, b"web2").await, b"web2");
    drop(web2);
    let mut ip = connect(port_of(&ip_ready)).await;
    assert_eq!(round_trip(&mut ip, b"ip again").await, b"ip again");
    drop(ip);
    // The unchanged AKS tunnel still answers through the same kubeconfig.
    assert!(
        get_pods(&s, &kube_out)
            .await
            .contains("hello-web-7c9d8f6b5d-x2x7q")
    );

    // A file that no longer parses: reported, and the running set is kept.
    std::fs::write(&file, "[[tunnel]\nname = \"broken\"\n").unwrap();
    run.signal(Signal::HUP);
    let failed = events
        .until("reload_failed", |v| v["event"] == "reload_failed")
        .await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:1:", file.display())),
        "{failed}"
    );
    assert_eq!(failed["kept"], 4, "{failed}");
    assert_eq!(round_trip(&mut held, b"kept").await, b"kept");

    // SIGTERM: every tunnel closed, every session deleted, the kubeconfig put back.
    run.signal(Signal::TERM);
    let mut closed = Vec::new();
    while let Some(v) = events.next().await {
        if v["event"] == "closed" {
            assert_eq!(v["undeleted_sessions"], 0, "{v}");
            closed.push(v["tunnel"].as_str().unwrap().to_owned());
        }
    }
    closed.sort();
    assert_eq!(closed, ["aks", "ip", "ssh", "web2"]);
    let status = run.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", run.stderr());
    s.sandbox.bastion().assert_no_orphans();
    vm.bastion().assert_no_orphans();
    assert_eq!(std::fs::read_to_string(&kube_out).unwrap(), USER_KUBECONFIG);
    assert_nothing_left_in(tmp.path());
    vm.shutdown().await;
}

/// Waits (bounded by [`WAIT`], a hang guard) until `cond` holds.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_prints_one_status_line_per_tunnel_and_sigint_closes_them() {
    let (s, vm, env) = sandbox_with_vm().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.toml");
    // Two AKS tunnels to the same cluster: one with a kubeconfig-out that does not exist yet
    // (created 0600, removed at exit), one with a temporary kubeconfig.
    let new_kubeconfig = dir.path().join("new.yaml");
    std::fs::write(
        &file,
        format!(
            "{}{}[[tunnel]]\nname = \"aks-new\"\naks = {{ name = \"myaks\", resource-group = \"aks-rg\" }}\nkubeconfig-out = \"{}\"\nport = 0\n\n[[tunnel]]\nname = \"aks-tmp\"\naks = {{ name = \"myaks\", resource-group = \"aks-rg\" }}\nskip-checks = true\nport = 0\n",
            vm_tunnel("ssh", 22, ""),
            vm_tunnel("web", 80, "max-connections = 4"),
            new_kubeconfig.display()
        ),
    )
    .unwrap();
    let mut cmd = command(&["up", "-f", file.to_str().unwrap()], &env);
    cmd.env("TMPDIR", tmp.path()).stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    run.wait_for_line(|l| l.starts_with("All 4 tunnels are ready"), WAIT)
        .await;
    let stderr = run.stderr();
    let port = |name: &str| -> u16 {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ready on 127.0.0.1:")))
            .unwrap_or_else(|| panic!("no status line for {name}:\n{stderr}"));
        assert!(line.contains(&sandbox_vm::vm_id()), "{line}");
        let addr = line.split_whitespace().nth(3).unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    let mut ssh = connect(port("ssh")).await;
    assert_eq!(round_trip(&mut ssh, b"hello").await, b"hello");
    assert!(http_get(port("web")).await.contains(HTTP_GREETING));
    run.wait_for_line(|l| l.starts_with("web: connection 1 closed"), WAIT)
        .await;
    // The kubeconfigs: the one asked for, and a temporary one under TMPDIR.
    let kubeconfig = |name: &str| -> std::path::PathBuf {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ready on ")))
            .unwrap_or_else(|| panic!("no status line for {name}:\n{stderr}"));
        let path = line
            .rsplit_once("(kubeconfig ")
            .and_then(|(_, p)| p.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no kubeconfig in {line}"));
        path.into()
    };
    assert_eq!(kubeconfig("aks-new"), new_kubeconfig);
    let temporary = kubeconfig("aks-tmp");
    assert!(temporary.starts_with(tmp.path()), "{}", temporary.display());
    for path in [&new_kubeconfig, &temporary] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        let pods = get_pods(&s, path).await;
        assert!(pods.contains("hello-web-7c9d8f6b5d-x2x7q"), "{pods}");
    }

    run.signal(Signal::INT);
    let status = run.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", run.stderr());
    run.assert_stderr_contains("ssh: closed (1 connection(s), 0 failed, every session deleted)");
    run.assert_stderr_contains("web: closed (1 connection(s), 0 failed, every session deleted)");
    vm.bastion().assert_no_orphans();
    s.sandbox.bastion().assert_no_orphans();
    assert!(
        !new_kubeconfig.exists(),
        "kubeconfig-out is removed at exit"
    );
    assert_nothing_left_in(tmp.path());
    drop(ssh);
    vm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_that_cannot_start_stops_the_others_with_its_error() {
    let (_s, vm, env) = sandbox_with_vm().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.toml");
    std::fs::write(
        &file,
        format!("{}{}", vm_tunnel("ssh", 22, ""), ghost_tunnel()),
    )
    .unwrap();
    let out = common::run(&["up", "-f", file.to_str().unwrap()], &env).await;
    let line = common::assert_clean_error(&out, 3);
    assert!(
        line.starts_with("error: tunnel 'ghost': Bastion 'nope' not found"),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ssh: closed (0 connection(s), 0 failed, every session deleted)"),
        "{stderr}"
    );
    vm.bastion().assert_no_orphans();
    vm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_in_the_file_keeps_sessions_ready_per_tunnel_and_sigterm_deletes_them() {
    let (_s, vm, env) = sandbox_with_vm().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.toml");
    // `prewarm` from [defaults] for one tunnel, overridden to 0 by the other.
    std::fs::write(
        &file,
        format!(
            "[defaults]\nprewarm = 2\n\n{}{}",
            vm_tunnel("ssh", 22, ""),
            vm_tunnel("web", 80, "prewarm = 0")
        ),
    )
    .unwrap();
    let mut cmd = command(
        &["--output", "json", "up", "-f", file.to_str().unwrap()],
        &env,
    );
    cmd.stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut events = Events::new(run.child.stdout.take().unwrap());
    events.until("up", |v| v["event"] == "up").await;
    let ssh_port = port_of(
        events
            .seen
            .iter()
            .find(|v| v["event"] == "ready" && v["tunnel"] == "ssh")
            .expect("ssh ready"),
    );
    // Two sessions to port 22 open with no client (their events may come before `up`); none
    // to port 80.
    let ssh_prewarmed = |seen: &[Value]| {
        seen.iter()
            .any(|v| v["event"] == "prewarmed" && v["tunnel"] == "ssh" && v["ready"] == 2)
    };
    if !ssh_prewarmed(&events.seen) {
        events
            .until("two pre-warmed sessions of ssh", |v| {
                v["event"] == "prewarmed" && v["tunnel"] == "ssh" && v["ready"] == 2
            })
            .await;
    }
    assert_eq!(live_sessions_to(&vm, 22), 2);
    assert_eq!(live_sessions_to(&vm, 80), 0);
    assert!(
        !events
            .seen
            .iter()
            .any(|v| v["event"] == "prewarmed" && v["tunnel"] == "web"),
        "{:#?}",
        events.seen
    );
    // A client is served by a ready session.
    let mut conn = connect(ssh_port).await;
    assert_eq!(round_trip(&mut conn, b"warm").await, b"warm");
    drop(conn);

    run.signal(Signal::TERM);
    let status = run.wait(WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", run.stderr());
    vm.bastion().assert_no_orphans();
    vm.shutdown().await;
}
