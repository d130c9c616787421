//! The command line, declared with clap's derive API.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use bastion_core::Secret;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// Azure Bastion native-client tunnels, ssh, ProxyCommand and AKS private clusters, without
/// the Azure CLI.
#[derive(Debug, Parser)]
#[command(
    name = "bastion",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_CODES_HELP,
    after_long_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Options every command understands.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands. Its `Debug` never shows the token: [`Secret`] prints a
/// placeholder.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Output format: human text, or one JSON object per result or event on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, env = "BASTION_OUTPUT")]
    pub output: OutputFormat,

    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Azure cloud: AzureCloud, AzureUSGovernment or AzureChinaCloud.
    #[arg(
        long,
        global = true,
        env = "BASTION_CLOUD",
        default_value = "AzureCloud"
    )]
    pub cloud: String,

    /// ARM endpoint of a custom cloud or the emulator (e.g. https://management.emulator.test:8443/).
    #[arg(long, global = true, env = "BASTION_ARM_ENDPOINT", value_name = "URL")]
    pub arm_endpoint: Option<String>,

    /// Extra trusted CA certificates (PEM) for ARM and the Bastion: private CAs, TLS-inspecting
    /// proxies, the emulator.
    #[arg(long, global = true, env = "BASTION_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Send connections for HOST to IP (like curl --resolve; the port is kept). Repeatable;
    /// the environment variable takes a comma-separated list.
    #[arg(
        long = "resolve",
        global = true,
        env = "BASTION_RESOLVE",
        value_name = "HOST=IP",
        value_delimiter = ','
    )]
    pub resolve: Vec<String>,

    /// How to get the Azure access token.
    #[arg(long, global = true, value_enum, env = "BASTION_AUTH", default_value_t = AuthMethod::Cli)]
    pub auth: AuthMethod,

    /// The access token for `--auth token`. Other users of this machine can read it in the
    /// process list: prefer --token-file or the BASTION_TOKEN environment variable.
    #[arg(long, global = true, value_name = "JWT", conflicts_with = "token_file")]
    pub token: Option<Secret>,

    /// Read the access token for `--auth token` from FILE (`-`: standard input, read to its
    /// end; not with `proxy`). Also BASTION_TOKEN_FILE; the token itself may be in BASTION_TOKEN.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Tenant for `--auth cli` (az account get-access-token --tenant).
    #[arg(long, global = true, env = "BASTION_TENANT")]
    pub tenant: Option<String>,

    /// Client id of a user-assigned managed identity for `--auth managed-identity`.
    #[arg(long, global = true, env = "BASTION_IDENTITY_CLIENT_ID")]
    pub identity_client_id: Option<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line on stdout.
    Json,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// The Azure CLI's sign-in (`az login`), then the Azure Developer CLI's.
    Cli,
    /// The managed identity of this VM / App Service / container.
    ManagedIdentity,
    /// Kubernetes workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE).
    WorkloadIdentity,
    /// A service principal secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
    ClientSecret,
    /// A ready-made ARM access token from --token-file / BASTION_TOKEN_FILE, BASTION_TOKEN or
    /// --token.
    Token,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a local port that tunnels to a resource behind a Bastion (az network bastion tunnel).
    Tunnel(TunnelArgs),
    /// Relay stdin/stdout to a resource behind a Bastion, for ssh -o ProxyCommand='bastion proxy ...'.
    Proxy(ProxyArgs),
    /// Open a tunnel to port 22 and run ssh through it; exits with ssh's code.
    Ssh(SshArgs),
    /// Reach an AKS private cluster through a Bastion: checks, credentials, kubeconfig, tunnel,
    /// then a shell or COMMAND with KUBECONFIG set (az aks bastion).
    Aks(AksArgs),
    /// Run the pre-flight checks alone and print the report.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Start the local sandbox (ARM, Bastion and Kubernetes emulators, an echo target) and print
    /// the environment that points the other commands at it; runs until Ctrl-C.
    #[cfg(feature = "emulator")]
    Emulate(EmulateArgs),
    /// Run the whole AKS flow against a built-in sandbox, step by step with timings.
    #[cfg(feature = "emulator")]
    Demo(DemoArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// Which Bastion to use.
#[derive(Debug, Clone, Args)]
pub struct BastionArgs {
    /// The Bastion's name (with --resource-group) or its full resource id.
    #[arg(short = 'n', long = "name", value_name = "NAME|ID")]
    pub name: Option<String>,

    /// The Bastion's resource group.
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,

    /// The subscription (default: the Bastion id's, else the target's, else AZURE_SUBSCRIPTION_ID).
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID")]
    pub subscription: Option<String>,

    /// Use this Bastion endpoint (its dnsName) and skip the ARM lookup.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub bastion_endpoint: Option<String>,
}

/// What to reach behind the Bastion.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The target's ARM resource id (VM, VMSS instance, AKS cluster, ...).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "target_ip_address",
        conflicts_with = "target_ip_address"
    )]
    pub target_resource_id: Option<String>,

    /// The target's private IP address (IP connect; needs enableIpConnect on the Bastion).
    #[arg(long, value_name = "IP")]
    pub target_ip_address: Option<String>,

    /// Allow target ports other than 22/3389 where the SKU or IP connect restricts them.
    #[arg(long)]
    pub allow_any_port: bool,
}

/// Which Bastion, and what to reach behind it: the options of `tunnel`, `proxy`, `ssh` and
/// `check tunnel`.
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// The Bastion.
    #[command(flatten)]
    pub bastion: BastionArgs,
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `bastion tunnel`.
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// The Bastion and the target behind it.
    #[command(flatten)]
    pub route: RouteArgs,

    /// The port on the target.
    #[arg(long, value_name = "PORT")]
    pub resource_port: u16,

    /// The local port (0 or absent: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// The local address; anything but loopback exposes the tunnel to other machines.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// Close a connection after this many seconds without bytes in either direction.
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,

    /// Largest WebSocket frame sent to the Bastion, in bytes (default 4096).
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<usize>,

    /// At most this many tunnelled connections (Bastion sessions) at once; more wait, unaccepted,
    /// until one ends [default: 256; 1 for the Developer SKU].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close the tunnel and exit after this many seconds without any open connection.
    #[arg(long, value_name = "SECONDS")]
    pub exit_after_idle: Option<u64>,
}

/// `bastion proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The Bastion and the target behind it.
    #[command(flatten)]
    pub route: RouteArgs,

    /// The port on the target.
    #[arg(long, value_name = "PORT", default_value_t = 22)]
    pub resource_port: u16,

    /// Largest WebSocket frame sent to the Bastion, in bytes (default 4096).
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<usize>,
}

/// `bastion ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// The Bastion and the target behind it.
    #[command(flatten)]
    pub route: RouteArgs,

    /// The ssh port on the target.
    #[arg(long, value_name = "PORT", default_value_t = 22)]
    pub resource_port: u16,

    /// The user to log in as.
    #[arg(short = 'u', long, alias = "username")]
    pub user: Option<String>,

    /// A private key file (passed to ssh as -i).
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,

    /// The ssh program to run.
    #[arg(long, default_value = "ssh", value_name = "PROGRAM")]
    pub ssh_command: String,

    /// Extra arguments for ssh (after `--`): options, then an optional remote command.
    #[arg(last = true, value_name = "SSH_ARGS")]
    pub ssh_args: Vec<String>,
}

/// Which AKS cluster and Bastion.
#[derive(Debug, Clone, Args)]
pub struct AksTargetArgs {
    /// The cluster's name.
    #[arg(short = 'n', long = "name")]
    pub name: String,

    /// The cluster's resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,

    /// The cluster's subscription.
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID")]
    pub subscription: Option<String>,

    /// The Bastion: a name or a resource id (default: discovered from the cluster's network).
    #[arg(long, value_name = "NAME|ID")]
    pub bastion: Option<String>,

    /// Use the cluster's admin credentials.
    #[arg(long)]
    pub admin: bool,
}

/// `bastion aks`.
#[derive(Debug, Args)]
// `--restore-kubeconfig` needs no cluster: -n and -g are required unless it is given (and are
// then empty).
#[command(
    override_usage = "bastion aks [OPTIONS] --name <NAME> --resource-group <RESOURCE_GROUP> [-- <COMMAND>...]\n       bastion aks --restore-kubeconfig"
)]
#[command(mut_arg("name", |a| a
    .required(false)
    .required_unless_present("restore_kubeconfig")
    .default_value("")
    .hide_default_value(true)))]
#[command(mut_arg("resource_group", |a| a
    .required(false)
    .required_unless_present("restore_kubeconfig")
    .default_value("")
    .hide_default_value(true)))]
// `bastion aks credentials ...` takes its own options: none of the tunnel's apply to it.
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct AksArgs {
    /// Instead of a tunnel: a step of its own.
    #[command(subcommand)]
    pub step: Option<AksCommand>,

    /// The cluster and Bastion.
    #[command(flatten)]
    pub cluster: AksTargetArgs,

    /// The local port of the tunnel (default: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Also give the command or shell the contexts of this kubeconfig: KUBECONFIG lists the
    /// temporary kubeconfig (the tunnel's context, current) first, then FILE, which is only
    /// read, never written.
    #[arg(long, value_name = "FILE", conflicts_with = "kubeconfig_out")]
    pub kubeconfig_path: Option<PathBuf>,

    /// With --kubeconfig-path, for tools that ignore KUBECONFIG: merge the tunnel's context into
    /// FILE itself. A 0600 backup is kept, and FILE is put back byte for byte on exit, or by the
    /// next `bastion aks` if this one is killed.
    #[arg(long, requires = "kubeconfig_path")]
    pub write_kubeconfig_in_place: bool,

    /// Put back any kubeconfig that an interrupted `--write-kubeconfig-in-place` left edited,
    /// then exit (needs no cluster).
    #[arg(long, conflicts_with_all = [
        "name", "resource_group", "bastion", "admin", "port", "kubeconfig_path",
        "kubeconfig_out", "skip_checks", "no_probe", "no_shell", "shell", "command",
    ])]
    pub restore_kubeconfig: bool,

    /// Write the kubeconfig here and keep it after exit (for GUI tools).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,

    /// Skip the pre-flight checks (SKU and native client are still required).
    #[arg(long)]
    pub skip_checks: bool,

    /// Skip the end-to-end probe (one session opened and deleted) before handing over.
    #[arg(long)]
    pub no_probe: bool,

    /// Keep the tunnel in the foreground instead of starting a shell; Ctrl-C ends it.
    #[arg(long, conflicts_with = "command")]
    pub no_shell: bool,

    /// The shell to start (default: $SHELL, else /bin/sh).
    #[arg(long, value_name = "PROGRAM")]
    pub shell: Option<String>,

    /// Run this command with KUBECONFIG set instead of a shell, and exit with its code.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `bastion aks SUBCOMMAND`.
#[derive(Debug, Subcommand)]
pub enum AksCommand {
    /// Fetch the cluster's credentials and merge them into a kubeconfig, without a tunnel
    /// (az aks get-credentials).
    Credentials(AksCredentialsArgs),
}

/// `--format` of `bastion aks credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialFormat {
    /// A kubelogin exec plugin (the API's default for AAD clusters).
    Exec,
    /// The legacy `azure` auth provider.
    Azure,
}

impl CredentialFormat {
    /// The value of the API's `format` query.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Azure => "azure",
        }
    }
}

/// `bastion aks credentials`.
#[derive(Debug, Args)]
pub struct AksCredentialsArgs {
    /// The cluster's name.
    #[arg(short = 'n', long = "name")]
    pub name: String,

    /// The cluster's resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,

    /// The cluster's subscription.
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID")]
    pub subscription: Option<String>,

    /// The cluster's admin credentials (its context is named `<context>-admin`).
    #[arg(short = 'a', long)]
    pub admin: bool,

    /// The kubeconfig to merge into (`-`: print the credentials on stdout) [default: the first
    /// file of KUBECONFIG, else ~/.kube/config].
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Name the context (and its cluster) NAME instead of the cluster's name.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Replace entries of the same name that differ (without it, such a merge is refused).
    #[arg(long)]
    pub overwrite_existing: bool,

    /// Point the server entry at the cluster's public FQDN (a private cluster with one).
    #[arg(long)]
    pub public_fqdn: bool,

    /// The credential format of an AAD cluster's user credentials.
    #[arg(long, value_enum)]
    pub format: Option<CredentialFormat>,
}

/// `bastion check`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// The pre-flight checks of `bastion aks`: SKU, native client, roles, network.
    Aks(CheckAksArgs),
    /// The pre-flight checks of `bastion tunnel`: SKU, native client, IP connect, ports.
    Tunnel(CheckTunnelArgs),
}

/// `bastion check aks`.
#[derive(Debug, Args)]
pub struct CheckAksArgs {
    /// The cluster and Bastion.
    #[command(flatten)]
    pub cluster: AksTargetArgs,
}

/// `bastion check tunnel`.
#[derive(Debug, Args)]
pub struct CheckTunnelArgs {
    /// The Bastion and the target behind it.
    #[command(flatten)]
    pub route: RouteArgs,

    /// The port on the target.
    #[arg(long, value_name = "PORT", default_value_t = 22)]
    pub resource_port: u16,
}

/// `bastion emulate`.
#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Also write the environment lines to this file (e.g. to `source` it from another shell).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// `bastion demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Use the built-in HTTPS client even when kubectl is on PATH.
    #[arg(long)]
    pub no_kubectl: bool,
}

/// `bastion completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_never_shows_the_token() {
        let cli = Cli::try_parse_from([
            "bastion",
            "--auth",
            "token",
            "--token",
            "eyJ.very-secret-token.sig",
            "completions",
            "bash",
        ])
        .unwrap();
        let shown = format!("{cli:?} {:#?}", cli.global);
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(
            cli.global.token.as_ref().map(Secret::expose),
            Some("eyJ.very-secret-token.sig")
        );
    }

    #[test]
    fn token_and_token_file_conflict() {
        let err = Cli::try_parse_from([
            "bastion",
            "--token",
            "t",
            "--token-file",
            "f",
            "completions",
            "bash",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn aks_takes_a_command_or_the_credentials_subcommand() {
        let cli = Cli::try_parse_from([
            "bastion", "aks", "-n", "c", "-g", "g", "--", "kubectl", "get", "pods",
        ])
        .unwrap();
        let Command::Aks(args) = cli.command else {
            panic!("aks")
        };
        assert!(args.step.is_none());
        assert_eq!(args.command, ["kubectl", "get", "pods"]);
        // A command named like the subcommand, after `--`, is still a command.
        let cli =
            Cli::try_parse_from(["bastion", "aks", "-n", "c", "-g", "g", "--", "credentials"])
                .unwrap();
        let Command::Aks(args) = cli.command else {
            panic!("aks")
        };
        assert!(args.step.is_none());
        let cli = Cli::try_parse_from([
            "bastion",
            "aks",
            "credentials",
            "-n",
            "c",
            "-g",
            "g",
            "--admin",
            "--file",
            "-",
        ])
        .unwrap();
        let Command::Aks(args) = cli.command else {
            panic!("aks")
        };
        let Some(AksCommand::Credentials(c)) = args.step else {
            panic!("credentials")
        };
        assert!(c.admin);
        assert_eq!(c.file.as_deref(), Some(std::path::Path::new("-")));
        // The tunnel's options do not mix with the subcommand.
        assert!(
            Cli::try_parse_from(["bastion", "aks", "-n", "c", "-g", "g", "credentials"]).is_err()
        );
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("pre-flight check failed"));
    }
}
