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
/// long as it lives and removed when dropped: for the files a command hands to a child program
/// (an `.rdp` file, an ssh key and certificate). The directories of the same kind left by runs
/// that were killed outright (`SIGKILL`: their locks are free) are removed first, and said so.
pub fn private_temp_dir(
    out: &crate::output::Output,
    prefix: &str,
) -> crate::exit::CliResult<bastion_arm::SessionDir> {
    let parent = std::env::temp_dir();
    for dir in bastion_arm::SessionDir::sweep_stale(&parent, prefix) {
        out.info(format!(
            "Removed {}, left by a bastion run that was killed",
            dir.display()
        ));
    }
    bastion_arm::SessionDir::create_in(&parent, prefix).map_err(|e| {
        crate::exit::CliError::new(
            crate::exit::Code::Other,
            format!("cannot create a temporary directory: {e}"),
        )
        .hint("check that TMPDIR (or /tmp) exists and is writable")
    })
}
