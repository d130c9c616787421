//! Exit codes of the `bastion` command, and the error type that carries one.
//!
//! They are documented once, in [`EXIT_CODES_HELP`]: `--help` prints it and the README
//! carries the same text (a test keeps the two identical).

use std::fmt;
use std::process::ExitCode;

/// The documented exit codes, as shown in `--help` and in the README's "Exit codes".
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    any other failure
  2    usage error or bad input (arguments, resource ids, ports, files)
  3    not found (Bastion, cluster or target resource)
  4    pre-flight check failed (SKU, native client, IP connect, roles, network)
  5    authentication or authorization failed
  6    tunnel failed (Bastion endpoint, token exchange, WebSocket)
  N    `ssh`, `rdp`, `aks -- COMMAND` and the `aks` shell exit with the child's own code
  129  SIGHUP, 130 SIGINT (Ctrl-C), 143 SIGTERM: interrupted before the tunnel was up
       (nothing is left behind), or by a second signal while the sessions are deleted";

/// A category of failure with a fixed exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: anything not covered below.
    Other,
    /// 2: usage error or bad input.
    Usage,
    /// 3: a resource was not found.
    NotFound,
    /// 4: a pre-flight check failed.
    Preflight,
    /// 5: authentication or authorization failed.
    Auth,
    /// 6: the tunnel failed.
    Tunnel,
    /// 128 + the signal that interrupted the setup (130 for SIGINT, 143 for SIGTERM).
    Interrupted(u8),
}

impl Code {
    /// The process exit status.
    pub fn status(self) -> u8 {
        match self {
            Code::Other => 1,
            Code::Usage => 2,
            Code::NotFound => 3,
            Code::Preflight => 4,
            Code::Auth => 5,
            Code::Tunnel => 6,
            Code::Interrupted(status) => status,
        }
    }

    /// A short machine-readable name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Code::Other => "other",
            Code::Usage => "usage",
            Code::NotFound => "not_found",
            Code::Preflight => "preflight_failed",
            Code::Auth => "auth_failed",
            Code::Tunnel => "tunnel_failed",
            Code::Interrupted(_) => "interrupted",
        }
    }
}

/// A failure of a command: what went wrong, what to do about it, and the exit code.
#[derive(Debug, Clone)]
pub struct CliError {
    /// The exit code category.
    pub code: Code,
    /// What went wrong.
    pub what: String,
    /// What to do about it, when the message does not already say.
    pub hint: Option<String>,
    /// Lines printed under the error in text mode: a short guide (see `credential_guide`).
    pub guide: Vec<String>,
    /// The full underlying message, kept for `--output json` when the text shows a guide.
    pub detail: Option<String>,
}

/// The error for a credential that could not give a token: a short guide in text mode (see
/// `credential_guide`), the SDK's whole message in `--output json`.
pub fn credential_error(cause: &str) -> CliError {
    CliError::new(Code::Auth, "no Azure credential could give an access token")
        .with_guide(crate::credential_guide::guide(cause), cause)
}

impl CliError {
    /// An error with `code` and a message. A message that already says what to do after
    /// ` — ` (the libraries' errors do) is split there into the problem and the hint.
    pub fn new(code: Code, what: impl Into<String>) -> Self {
        let what = one_line(&what.into());
        let (what, hint) = match what.split_once(" — ") {
            Some((problem, fix)) if !problem.trim().is_empty() && !fix.trim().is_empty() => {
                (problem.trim_end().to_owned(), Some(fix.trim().to_owned()))
            }
            _ => (what, None),
        };
        Self {
            code,
            what,
            hint,
            guide: Vec::new(),
            detail: None,
        }
    }

    /// A usage / bad-input error (exit 2).
    pub fn usage(what: impl Into<String>) -> Self {
        Self::new(Code::Usage, what)
    }

    /// Adds what to do (after what the message already said to do, if anything).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        let hint = one_line(&hint.into());
        self.hint = Some(match self.hint.take() {
            Some(first) => format!("{first}; {hint}"),
            None => hint,
        });
        self
    }

    /// Adds guide lines under the error, and the full message they summarise.
    pub fn with_guide(mut self, guide: Vec<String>, detail: &str) -> Self {
        self.guide = guide;
        self.detail = Some(detail.to_owned());
        self
    }

    /// The error as printed: with its own hint, or failing that the general one of its exit
    /// code, so that every error line says what to do (`error: <what> — <what to do>`).
    pub fn with_default_hint(self) -> Self {
        let hint = match self.code {
            Code::Other => "run again with -v for the details",
            Code::Usage => "see `bastion --help` for the options",
            Code::NotFound => "check the names, resource groups and subscription given",
            Code::Preflight => "`bastion check` shows every check with its fix",
            Code::Auth => "sign in again (`az login`), and check your roles with `bastion check`",
            Code::Tunnel => {
                "run again with -v for the details; `bastion check tunnel` checks the Bastion and your access"
            }
            Code::Interrupted(_) => "nothing was left behind",
        };
        self.or_hint(hint)
    }

    /// Adds what to do unless a hint is already there.
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.hint(hint)
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

/// Result alias of the CLI.
pub type CliResult<T> = Result<T, CliError>;

/// What a command ends with: success, or a child's own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit with this status (a child's code).
    Status(u8),
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Status(n) => ExitCode::from(n),
        }
    }
}

/// The exit status to use for a child that ended with `status`: its code, or 128 + the signal
/// that killed it (as shells report it).
pub fn child_status(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return u8::try_from((128 + sig) & 0xff).unwrap_or(1);
        }
    }
    1
}

/// Flattens a multi-line message into one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

// ----- library errors → exit codes ------------------------------------------------------------

impl From<bastion_core::Error> for CliError {
    fn from(e: bastion_core::Error) -> Self {
        use bastion_core::Error as E;
        let code = match &e {
            E::Protocol(_) | E::Config(_) | E::PortNotAllowed { .. } | E::LocalPortInUse { .. } => {
                Code::Usage
            }
            E::Credential(_) => Code::Auth,
            _ if e.is_auth() => Code::Auth,
            _ => Code::Tunnel,
        };
        if let E::Credential(cause) = &e {
            return credential_error(cause);
        }
        let err = CliError::new(code, e.to_string());
        match &e {
            _ if e.status() == Some(401) => err.hint(
                "the Bastion refused the access token: sign in again, with the tenant of the Bastion's subscription",
            ),
            _ if e.status() == Some(403) => err.hint(
                "you need Reader on the target, its NIC and the Bastion (and the target VNet when peered); run `bastion check tunnel` for details",
            ),
            E::PortNotAllowed { .. } => {
                err.hint("pass --allow-any-port to try another port anyway")
            }
            E::LocalPortInUse { .. } => err.hint("choose another --port, or 0 for a free one"),
            E::Connect { .. } | E::Timeout { .. } => err.hint(
                "check that the Bastion endpoint is reachable from this machine (DNS, proxy, firewall), or pass --ca-file for a TLS-inspecting proxy",
            ),
            _ => err,
        }
    }
}

impl From<bastion_arm::ArmError> for CliError {
    fn from(e: bastion_arm::ArmError) -> Self {
        use bastion_arm::ArmError as E;
        let code = match &e {
            _ if e.is_not_found() => Code::NotFound,
            _ if e.is_authentication_failed() || e.is_authorization_failed() => Code::Auth,
            E::Credential { .. } => Code::Auth,
            E::ResourceId(_) | E::InvalidArgument(_) | E::Config(_) => Code::Usage,
            _ => Code::Other,
        };
        if let E::Credential { cause, .. } = &e {
            return credential_error(cause);
        }
        let err = CliError::new(code, e.to_string());
        if e.is_transport() {
            err.hint("check the network path to ARM, --arm-endpoint and --ca-file")
        } else if e.is_local_accounts_disabled() {
            err.hint("drop --admin to use your user credentials")
        } else {
            err
        }
    }
}

impl From<bastion_arm::NativeClientError> for CliError {
    fn from(e: bastion_arm::NativeClientError) -> Self {
        use bastion_arm::NativeClientError as E;
        let code = match e {
            E::InvalidPort => Code::Usage,
            E::InvalidDnsName { .. } => Code::Other,
            _ => Code::Preflight,
        };
        let err = CliError::new(code, e.to_string());
        match e {
            E::DeveloperPortNotAllowed { .. } | E::IpConnectPortNotAllowed { .. } => {
                err.hint("pass --allow-any-port to try another port anyway")
            }
            E::DeveloperNotForAks { .. } | E::UnknownSku { .. } => err.hint(
                "pass --bastion with the resource id of a Standard or Premium Bastion with native client support",
            ),
            _ => err,
        }
    }
}

impl From<bastion_arm::DiscoveryError> for CliError {
    fn from(e: bastion_arm::DiscoveryError) -> Self {
        use bastion_arm::DiscoveryError as D;
        if let D::Arm(arm) = e {
            return CliError::from(*arm);
        }
        let (code, hint) = match &e {
            D::InvalidBastionId { .. } | D::NotABastionId { .. } => (
                Code::Usage,
                Some(
                    "--bastion takes a Bastion's name or its full resource id (Microsoft.Network/bastionHosts)",
                ),
            ),
            D::BastionIdNotFound { .. } => (Code::NotFound, None),
            D::BastionNameNotFound { .. } => (
                Code::NotFound,
                Some("pass --bastion with the full resource id if the Bastion is elsewhere"),
            ),
            D::ManagedBastionNotFound { .. } => (
                Code::NotFound,
                Some("pass --bastion with the id or name of a Bastion to use"),
            ),
            // Not found where we may look, but some places refused us: an access problem.
            D::NoBastionFound { denied, .. } if !denied.is_empty() => (
                Code::Auth,
                Some("pass --bastion with the Bastion's resource id"),
            ),
            D::NoBastionFound { .. } => (
                Code::NotFound,
                Some("pass --bastion with the Bastion's resource id"),
            ),
            D::AmbiguousName { .. } => (
                Code::Usage,
                Some("pass --bastion with the full resource id of the one to use"),
            ),
            D::Ambiguous { .. } => (Code::Usage, Some("choose one with --bastion <resource id>")),
            _ => (Code::Other, None),
        };
        let err = CliError::new(code, e.to_string());
        match hint {
            Some(hint) => err.hint(hint),
            None => err,
        }
    }
}

impl From<bastion_arm::AksError> for CliError {
    fn from(e: bastion_arm::AksError) -> Self {
        use bastion_arm::AksError as A;
        match e {
            A::LocalAccountsDisabled { .. } => CliError::new(Code::Preflight, e.to_string())
                .hint("drop --admin to use your Microsoft Entra ID credentials"),
            _ => CliError::new(Code::Other, e.to_string()),
        }
    }
}

impl From<bastion_arm::ResourceIdError> for CliError {
    fn from(e: bastion_arm::ResourceIdError) -> Self {
        CliError::usage(e.to_string())
    }
}

impl From<bastion_arm::KubeconfigError> for CliError {
    fn from(e: bastion_arm::KubeconfigError) -> Self {
        CliError::new(Code::Other, e.to_string())
            .or_hint("check the kubeconfig (`kubectl config view` shows what kubectl reads in it)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_failure_is_an_auth_error_with_the_guide_and_the_whole_message_kept() {
        let cause = "AzureCliCredential authentication failed. az not found on PATH";
        let err = credential_error(cause);
        assert_eq!(err.code, Code::Auth);
        assert_eq!(err.guide, crate::credential_guide::guide(cause));
        assert_eq!(err.detail.as_deref(), Some(cause));
    }

    #[test]
    fn the_readme_carries_the_exit_codes_of_help_word_for_word() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("```text\n{EXIT_CODES_HELP}\n```")),
            "README.md's exit codes differ from EXIT_CODES_HELP:\n{EXIT_CODES_HELP}"
        );
        for signal in ["SIGHUP", "SIGINT", "SIGTERM"] {
            assert!(EXIT_CODES_HELP.contains(signal));
        }
        for (code, status) in [
            (Code::Other, 1),
            (Code::Usage, 2),
            (Code::NotFound, 3),
            (Code::Preflight, 4),
            (Code::Auth, 5),
            (Code::Tunnel, 6),
        ] {
            assert_eq!(code.status(), status);
            assert!(
                EXIT_CODES_HELP.contains(&format!("\n  {status}    ")),
                "{status}"
            );
        }
        for status in [129, 130, 143] {
            assert!(EXIT_CODES_HELP.contains(&status.to_string()), "{status}");
        }
    }

    #[test]
    fn a_message_that_says_what_to_do_is_split_and_cli_hints_follow_it() {
        let e = CliError::usage("port 0 is not valid — use a port from 1 to 65535");
        assert_eq!(e.what, "port 0 is not valid");
        assert_eq!(e.hint.as_deref(), Some("use a port from 1 to 65535"));
        let e = e.hint("pass --resource-port");
        assert_eq!(
            e.to_string(),
            "port 0 is not valid — use a port from 1 to 65535; pass --resource-port"
        );
        // Every native-client refusal says what to do.
        let refusals = [
            bastion_arm::NativeClientError::InvalidPort,
            bastion_arm::NativeClientError::IpConnectDisabled {
                bastion: "b".into(),
                resource_group: "rg".into(),
            },
            bastion_arm::NativeClientError::IpConnectPortNotAllowed { port: 80 },
        ];
        for refusal in refusals {
            let e = CliError::from(refusal);
            assert!(e.hint.is_some(), "{e}");
        }
    }

    #[test]
    fn every_printed_error_says_what_to_do() {
        for code in [
            Code::Other,
            Code::Usage,
            Code::NotFound,
            Code::Preflight,
            Code::Auth,
            Code::Tunnel,
            Code::Interrupted(130),
        ] {
            let e = CliError::new(code, "it failed").with_default_hint();
            assert!(e.hint.as_deref().is_some_and(|h| !h.is_empty()), "{code:?}");
        }
        // An error's own hint is kept.
        let e = CliError::usage("bad").hint("do this").with_default_hint();
        assert_eq!(e.to_string(), "bad — do this");
    }

    #[test]
    fn renders_what_and_hint_on_one_line() {
        let e = CliError::usage("bad\nthing").hint("do this");
        assert_eq!(e.to_string(), "bad thing — do this");
        assert_eq!(e.code.status(), 2);
    }
}
