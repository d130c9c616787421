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

/// A private (0700, whatever the umask) temporary directory named `PREFIX…`, removed when
/// dropped: for the files a command hands to a child program (an `.rdp` file, an ssh
/// certificate).
pub fn private_temp_dir(prefix: &str) -> crate::exit::CliResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| {
            crate::exit::CliError::new(
                crate::exit::Code::Other,
                format!("cannot create a temporary directory: {e}"),
            )
            .hint("check that TMPDIR (or /tmp) exists and is writable")
        })
}
