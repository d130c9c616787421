//! One module per command, plus the shared pieces (`target` resolution, `child` processes).

pub mod aks;
pub mod check;
pub mod child;
pub mod cluster;
pub mod completions;
pub mod credentials;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulate;
pub mod kube_token;
pub mod kubeclient;
pub mod kubefile;
pub mod proxy;
pub mod rdp;
pub mod ssh;
pub mod target;
pub mod tunnel;
pub mod up;

/// A private (0700, whatever the umask) temporary directory named `PREFIX…`, locked for as
/// long as it lives and removed when dropped, so that a later run can remove it should this one
/// be killed ([`sweep_temp_dirs`]): for the files a command keeps for itself or hands to a
/// child program (a temporary kubeconfig, an `.rdp` file, an ssh key and certificate).
pub fn session_dir(prefix: &str) -> crate::exit::CliResult<bastion_arm::SessionDir> {
    bastion_arm::SessionDir::create_in(&std::env::temp_dir(), prefix).map_err(|e| {
        crate::exit::CliError::new(
            crate::exit::Code::Other,
            format!("cannot create a temporary directory: {e}"),
        )
        .hint("check that TMPDIR (or /tmp) exists and is writable")
    })
}

/// Removes the [`session_dir`]s named `PREFIX…` that runs of `command` killed outright
/// (`SIGKILL`) left behind (their locks died with them), saying so.
pub fn sweep_temp_dirs(out: &crate::output::Output, prefix: &str, command: &str) {
    for dir in bastion_arm::SessionDir::sweep_stale(&std::env::temp_dir(), prefix) {
        out.info(format!(
            "Removed {}, left by a {command} that was killed",
            dir.display()
        ));
    }
}

/// [`sweep_temp_dirs`], then a new [`session_dir`]: for a command that needs its directory
/// from the start.
pub fn private_temp_dir(
    out: &crate::output::Output,
    prefix: &str,
    command: &str,
) -> crate::exit::CliResult<bastion_arm::SessionDir> {
    sweep_temp_dirs(out, prefix, command);
    session_dir(prefix)
}
