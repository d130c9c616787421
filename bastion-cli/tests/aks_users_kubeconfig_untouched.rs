//! The user's kubeconfig (`--kubeconfig-path`) is byte-identical after every way `bastion aks`
//! can end: a normal exit, a failed check, an error after the kubeconfig was written, SIGTERM,
//! SIGINT, and SIGKILL followed by the next run or `--restore-kubeconfig`. For a regular 0644
//! file, for a symlink to one (the link stays a link), and for a file that did not exist (it
//! stays absent); in the default mode (the file is listed in KUBECONFIG, only read) and with
//! `--write-kubeconfig-in-place` (edited, then put back from its backup).
//!
//! Each run gets its own state directory (`XDG_STATE_HOME`, where in-place backups go) and
//! `TMPDIR`, both checked to be empty at the end.

use crate::common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bastion_emulator::Faults;
use bastion_emulator::sandbox::{HUB_BASTION, NO_BASTION_READER};
use common::{ArmSandbox, Running, WAIT, assert_clean_error, assert_success, command, run_command};
use rustix::process::Signal;
use tokio::process::Command;

/// Laid out by hand, with comments and flow style: any re-serialisation would show.
const USERS_FILE: &str = "# my kubeconfig: hand-written, comments and layout must survive\n\
apiVersion: v1\n\
kind: Config\n\
clusters:\n\
- name: other\n  cluster: {server: 'https://other.example.test:6443'}   # flow style\n\
contexts:\n\
- name: other\n  context: {cluster: other, user: other-user}\n\
current-context: other\n\
users:\n\
- name: other-user\n  user: {token: not-a-real-token}\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular file, mode 0644.
    Regular,
    /// `config -> real/config`, the target 0644.
    Symlink,
    /// No file at the path.
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--kubeconfig-path FILE`: FILE listed in KUBECONFIG after the tunnel's file.
    Listed,
    /// `--kubeconfig-path FILE --write-kubeconfig-in-place`.
    InPlace,
}

/// What must not change: the link (if any), and the bytes, mode and owner of the file.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    link: Option<PathBuf>,
    file: Option<(Vec<u8>, u32, u32, u32)>,
}

fn snapshot(path: &Path) -> Snapshot {
    let link = std::fs::read_link(path).ok();
    let file = std::fs::metadata(path).ok().map(|m| {
        (
            std::fs::read(path).unwrap(),
            m.permissions().mode() & 0o7777,
            m.uid(),
            m.gid(),
        )
    });
    Snapshot { link, file }
}

/// A user's kubeconfig of one [`Kind`] in a scratch directory, with a private state directory
/// and TMPDIR for the runs against it.
struct Case {
    kind: Kind,
    mode: Mode,
    root: tempfile::TempDir,
    path: PathBuf,
    before: Snapshot,
}

impl Case {
    fn new(kind: Kind, mode: Mode) -> Self {
        let root = tempfile::tempdir().unwrap();
        let kube = root.path().join("kube");
        std::fs::create_dir(&kube).unwrap();
        for d in ["state", "tmp"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let path = kube.join("config");
        match kind {
            Kind::Regular => write_0644(&path),
            Kind::Symlink => {
                std::fs::create_dir(kube.join("real")).unwrap();
                write_0644(&kube.join("real").join("config"));
                std::os::unix::fs::symlink("real/config", &path).unwrap();
            }
            Kind::Absent => {}
        }
        let before = snapshot(&path);
        Self {
            kind,
            mode,
            root,
            path,
            before,
        }
    }

    fn state_home(&self) -> PathBuf {
        self.root.path().join("state")
    }

    fn tmpdir(&self) -> PathBuf {
        self.root.path().join("tmp")
    }

    /// `bastion aks --kubeconfig-path FILE [--write-kubeconfig-in-place] ARGS...` as `env`'s
    /// principal, with this case's state directory and TMPDIR.
    fn aks(&self, env: &[(String, String)], args: &[&str]) -> Command {
        let mut all = vec!["aks", "-n", "myaks", "-g", "aks-rg", "--kubeconfig-path"];
        all.push(self.path.to_str().unwrap());
        if self.mode == Mode::InPlace {
            all.push("--write-kubeconfig-in-place");
        }
        all.extend_from_slice(args);
        self.env(command(&all, env))
    }

    fn env(&self, mut cmd: Command) -> Command {
        cmd.env("XDG_STATE_HOME", self.state_home())
            .env("TMPDIR", self.tmpdir());
        cmd
    }

    /// Whether the user's file holds the tunnel's server now.
    fn is_edited(&self) -> bool {
        std::fs::read_to_string(&self.path).is_ok_and(|t| t.contains("server: https://localhost:"))
    }

    /// The file is as it was, nothing is left in the state directory or TMPDIR.
    #[track_caller]
    fn assert_intact(&self, when: &str) {
        assert_eq!(
            snapshot(&self.path),
            self.before,
            "{:?} {:?} file after {when}",
            self.kind,
            self.mode
        );
        if self.kind == Kind::Absent {
            assert!(
                std::fs::symlink_metadata(&self.path).is_err(),
                "{when}: the file that did not exist must stay absent"
            );
        }
        let edits = self.state_home().join("bastion").join("kubeconfig-edits");
        let left: Vec<_> = std::fs::read_dir(&edits)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "{when}: left in the state directory: {left:?}"
        );
        let left: Vec<_> = std::fs::read_dir(self.tmpdir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{when}: left in TMPDIR: {left:?}");
        // Nothing beside the user's file either (no temporary file, no backup).
        let mut names: Vec<String> = std::fs::read_dir(self.path.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected: &[&str] = match self.kind {
            Kind::Regular => &["config"],
            Kind::Symlink => &["config", "real"],
            Kind::Absent => &[],
        };
        assert_eq!(names, expected, "{when}: files beside the kubeconfig");
    }
}

fn write_0644(path: &Path) {
    std::fs::write(path, USERS_FILE).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for mode in [Mode::Listed, Mode::InPlace] {
        for kind in [Kind::Regular, Kind::Symlink, Kind::Absent] {
            v.push(Case::new(kind, mode));
        }
    }
    v
}

/// Prints `KUBECONFIG`, then the `server:` and `current-context:` lines of each file it lists.
const SHOW_KUBECONFIG: &str = "echo \"KUBECONFIG=$KUBECONFIG\"; IFS=:; for f in $KUBECONFIG; do \
     echo \"== $f\"; grep -E 'server:|current-context:' \"$f\"; done";

/// A child that runs until its parent (bastion) is gone, so a killed bastion leaves no orphan.
/// It says `child started` on stderr once it runs (its parent known).
const WAIT_FOR_PARENT: &str =
    "echo 'child started' >&2; while kill -0 $PPID 2>/dev/null; do sleep 0.1; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_exit() {
    let s = ArmSandbox::start().await;
    for case in cases() {
        let out = run_command(case.aks(&s.env(), &["--", "sh", "-c", SHOW_KUBECONFIG])).await;
        let (stdout, stderr) = assert_success(&out);
        let listed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("KUBECONFIG="))
            .unwrap()
            .to_owned();
        let files: Vec<&str> = listed.split(':').collect();
        let path = case.path.to_str().unwrap();
        match (case.mode, case.kind) {
            (Mode::Listed, Kind::Absent) => {
                // The tunnel's file alone, in the private TMPDIR.
                assert_eq!(files.len(), 1, "{stdout}");
                assert!(files[0].starts_with(case.tmpdir().to_str().unwrap()));
            }
            (Mode::Listed, _) => {
                // The tunnel's file first (current context, pointing at the tunnel), then theirs.
                assert_eq!(files.len(), 2, "{stdout}");
                assert!(files[0].starts_with(case.tmpdir().to_str().unwrap()));
                assert_eq!(files[1], path);
            }
            (Mode::InPlace, _) => assert_eq!(files, [path], "{stdout}"),
        }
        let first = stdout.split("== ").nth(1).unwrap();
        assert!(first.contains("server: https://localhost:"), "{stdout}");
        assert!(first.contains("current-context: myaks"), "{stdout}");
        if case.kind != Kind::Absent {
            assert!(
                stdout.contains("https://other.example.test:6443"),
                "their cluster is there too:\n{stdout}"
            );
        }
        if case.mode == Mode::InPlace {
            assert!(
                stderr.contains(&format!("{path}: put back byte for byte"))
                    || stderr.contains(&format!("{path}: removed (it did not exist before)")),
                "{stderr}"
            );
        }
        case.assert_intact("a normal exit");
        s.sandbox.bastion().assert_no_orphans();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_check_changes_nothing() {
    let s = ArmSandbox::start().await;
    for case in cases() {
        let out = run_command(case.aks(
            &s.env_as(NO_BASTION_READER),
            &["--bastion", HUB_BASTION, "--", "true"],
        ))
        .await;
        let line = assert_clean_error(&out, 4);
        assert!(line.contains("pre-flight check failed"), "{line}");
        case.assert_intact("a failed check");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_after_the_kubeconfig_was_written() {
    let s = ArmSandbox::start().await;
    s.sandbox
        .bastion()
        .set_faults(Faults::none().token_error(403, "Forbidden: the target is not reachable"));
    for case in cases() {
        let out = run_command(case.aks(&s.env(), &["--", "true"])).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("✓ Kubeconfig"), "it was written:\n{stderr}");
        assert_clean_error(&out, 5);
        case.assert_intact("a failed probe");
    }
    s.sandbox.bastion().assert_no_orphans();
}

/// Starts `bastion aks ... -- sh -c WAIT_FOR_PARENT` and waits until the child runs.
async fn start_running(case: &Case, s: &ArmSandbox) -> Running {
    let mut cmd = case.aks(&s.env(), &["--", "sh", "-c", WAIT_FOR_PARENT]);
    cmd.stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    run.wait_for_line(|l| l == "child started", WAIT).await;
    // While the child runs: edited in place, or not touched at all.
    match case.mode {
        Mode::InPlace => assert!(case.is_edited(), "{:?}: edited while running", case.kind),
        Mode::Listed => assert_eq!(snapshot(&case.path), case.before),
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint() {
    let s = ArmSandbox::start().await;
    for case in cases() {
        let mut run = start_running(&case, &s).await;
        run.signal(Signal::TERM);
        let status = run.wait(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(143), "{}", run.stderr());
        run.assert_stderr_contains("Tunnel closed, every session deleted");
        case.assert_intact("SIGTERM");
    }
    // Ctrl-C ends a foreground tunnel (--no-shell) the same way.
    for kind in [Kind::Regular, Kind::Symlink] {
        let case = Case::new(kind, Mode::InPlace);
        let mut cmd = case.aks(&s.env(), &["--no-shell"]);
        cmd.stdout(Stdio::null());
        let mut run = Running::spawn(cmd);
        run.ready_port().await;
        assert!(case.is_edited());
        run.signal(Signal::INT);
        let status = run.wait(Duration::from_secs(20)).await;
        assert!(status.success(), "{}", run.stderr());
        case.assert_intact("SIGINT");
    }
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_restore_kubeconfig_or_the_next_run() {
    let s = ArmSandbox::start().await;
    for by_flag in [true, false] {
        for kind in [Kind::Regular, Kind::Symlink, Kind::Absent] {
            let case = Case::new(kind, Mode::InPlace);
            let mut run = start_running(&case, &s).await;
            run.signal(Signal::KILL);
            run.wait(Duration::from_secs(10)).await;
            // Killed outright: still edited, the backup and marker on disk.
            assert!(case.is_edited(), "{kind:?}: left edited by SIGKILL");
            if kind == Kind::Symlink {
                assert!(std::fs::read_link(&case.path).is_ok(), "still a symlink");
            }

            let out = if by_flag {
                run_command(case.env(command(&["aks", "--restore-kubeconfig"], &s.env()))).await
            } else {
                // Any next `bastion aks`, even without --kubeconfig-path.
                run_command(case.env(s.aks(&["--", "true"]))).await
            };
            let (_, stderr) = assert_success(&out);
            assert!(
                stderr.contains("was left edited by a bastion aks that was killed"),
                "{stderr}"
            );
            if !by_flag {
                // The killed run's temporary directory was swept too.
                assert!(
                    stderr.contains("left by a bastion aks that was killed"),
                    "{stderr}"
                );
            }
            case.assert_intact(if by_flag {
                "SIGKILL then --restore-kubeconfig"
            } else {
                "SIGKILL then the next run"
            });
        }
    }
    // Nothing left to restore: said so, exit 0.
    let case = Case::new(Kind::Regular, Mode::InPlace);
    let out = run_command(case.env(command(&["aks", "--restore-kubeconfig"], &s.env()))).await;
    let (_, stderr) = assert_success(&out);
    assert!(stderr.contains("nothing to restore"), "{stderr}");
    case.assert_intact("a --restore-kubeconfig with nothing to do");
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_default_mode_touches_nothing_and_the_temp_dir_is_swept() {
    let s = ArmSandbox::start().await;
    for kind in [Kind::Regular, Kind::Symlink, Kind::Absent] {
        let case = Case::new(kind, Mode::Listed);
        let mut run = start_running(&case, &s).await;
        run.signal(Signal::KILL);
        run.wait(Duration::from_secs(10)).await;
        assert_eq!(snapshot(&case.path), case.before);
        // The killed run's private directory (with the tunnel's kubeconfig) is still there...
        assert_eq!(std::fs::read_dir(case.tmpdir()).unwrap().count(), 1);
        // ...until the next run.
        let out = run_command(case.env(command(&["aks", "--restore-kubeconfig"], &s.env()))).await;
        assert_success(&out);
        case.assert_intact("SIGKILL then the next run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_edited_in_place_is_saved_aside() {
    let s = ArmSandbox::start().await;
    let case = Case::new(Kind::Regular, Mode::InPlace);
    let out = run_command(case.aks(
        &s.env(),
        &[
            "--",
            "sh",
            "-c",
            "echo '# added by the child' >> \"$KUBECONFIG\"",
        ],
    ))
    .await;
    let (_, stderr) = assert_success(&out);
    assert_eq!(snapshot(&case.path), case.before);
    let saved = stderr
        .lines()
        .find_map(|l| l.split_once("that version is saved as ").map(|(_, p)| p))
        .unwrap_or_else(|| panic!("{stderr}"));
    let saved = std::fs::read_to_string(saved).unwrap();
    assert!(saved.ends_with("# added by the child\n"), "{saved}");
    assert!(saved.contains("server: https://localhost:"), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_edit_is_left_alone_and_a_second_one_refused() {
    let s = ArmSandbox::start().await;
    let case = Case::new(Kind::Symlink, Mode::InPlace);
    let mut first = start_running(&case, &s).await;
    let edited = std::fs::read(&case.path).unwrap();

    // --restore-kubeconfig does not touch the file of a live run.
    let out = run_command(case.env(command(&["aks", "--restore-kubeconfig"], &s.env()))).await;
    let (_, stderr) = assert_success(&out);
    assert!(
        stderr.contains("is edited in place by a running bastion aks"),
        "{stderr}"
    );
    // Nor does a second in-place run on the same file: refused before it edits anything.
    let out = run_command(case.aks(&s.env(), &["--", "true"])).await;
    let line = assert_clean_error(&out, 1);
    assert!(
        line.contains("is being edited in place by another running bastion"),
        "{line}"
    );
    assert_eq!(std::fs::read(&case.path).unwrap(), edited);

    first.signal(Signal::TERM);
    first.wait(Duration::from_secs(20)).await;
    case.assert_intact("the first run's SIGTERM");
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_combinations_are_usage_errors_before_anything_is_read() {
    let s = ArmSandbox::start().await;
    // In place needs a file; --restore-kubeconfig takes no cluster; a broken FILE is refused.
    for args in [
        &[
            "aks",
            "-n",
            "myaks",
            "-g",
            "aks-rg",
            "--write-kubeconfig-in-place",
        ][..],
        &["aks", "--restore-kubeconfig", "-n", "myaks"][..],
    ] {
        let out = run_command(command(args, &s.env())).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let case = Case::new(Kind::Regular, Mode::Listed);
    std::fs::write(&case.path, "clusters: [\n").unwrap();
    let out = run_command(case.aks(&s.env(), &["--", "true"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("not valid YAML"), "{line}");
    // Refused before any Azure call.
    assert!(s.sandbox.arm().requests().is_empty());
}
