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
    /// Open a tunnel to port 3389 and start the RDP client on it (xfreerdp, mstsc, macOS's
    /// Remote Desktop); exits with the client's code. --no-launch: write a .rdp file instead.
    Rdp(RdpArgs),
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
    /// Start several named tunnels (VMs, IP connect, AKS clusters) from a TOML file; SIGHUP
    /// re-reads it.
    Up(UpArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// kubectl exec credential plugin for AAD-enabled AKS clusters: prints an ExecCredential
    /// with a token for the AKS API server from the --auth credential (cached on disk until
    /// shortly before it expires). `bastion aks` writes it into the kubeconfig for you.
    KubeToken(KubeTokenArgs),
}

/// `bastion kube-token`.
#[derive(Debug, Args)]
pub struct KubeTokenArgs {
    /// With `--auth token` (an ARM token, which the AKS API server refuses): read the AKS
    /// token (audience 6dae42f8-4368-4678-94ff-3960e28e3630) from FILE.
    #[arg(long, env = "BASTION_KUBE_TOKEN_FILE", value_name = "FILE")]
    pub server_token_file: Option<PathBuf>,

    /// Neither read nor write the token cache ($XDG_CACHE_HOME/bastion/kube-tokens).
    #[arg(long)]
    pub no_cache: bool,
}

/// `--kube-auth`: how kubectl authenticates to an AAD-enabled cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum KubeAuth {
    /// `bastion kube-token` with this run's --auth (and its tenant, identity, cloud options).
    #[default]
    Bastion,
    /// kubelogin, with the --login mode matching --auth (cli: azurecli, managed-identity: msi,
    /// workload-identity: workloadidentity, client-secret: spn).
    Kubelogin,
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

    /// The local listener and its connections.
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// End the tunnel this many seconds after it is ready, whatever is open (az's --timeout;
    /// 0: never). Open connections are closed and every session is deleted; exit code 0.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// The local listener and its connections: the options `tunnel` and `aks` share (flattened
/// into both). `proxy`, a single connection on stdin/stdout, takes only `--idle-timeout` and
/// `--max-frame-size`, as fields of its own.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectionArgs {
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

    /// Close the tunnel and exit after this many seconds without any open connection (`aks`:
    /// with --no-shell).
    #[arg(long, value_name = "SECONDS")]
    pub exit_after_idle: Option<u64>,

    /// Keep N Bastion sessions connected ahead of need, so a new connection costs only its data
    /// round trip (what the target sends first, such as ssh's banner, is kept for it). Each is
    /// replaced after 60 s unused and deleted on exit; they count against --max-connections
    /// (a Developer SKU Bastion allows 1) [default: 0, off].
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub prewarm: usize,
}

impl Default for ConnectionArgs {
    /// What the command line gives when none of these options is used.
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            idle_timeout: None,
            max_frame_size: None,
            max_connections: None,
            exit_after_idle: None,
            prewarm: 0,
        }
    }
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

    /// Close the connection after this many seconds without bytes in either direction.
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,

    /// Largest WebSocket frame sent to the Bastion, in bytes (default 4096).
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<usize>,

    /// Accepted as on `tunnel` and `aks`, with nothing more to do: `proxy` is one connection,
    /// and its session is opened as soon as it starts, before ssh writes anything (the
    /// target's banner is passed on as soon as it comes).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub prewarm: usize,
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

    /// The user to log in as (`--auth-type AAD`: by default the signed-in user's name, from
    /// the certificate).
    #[arg(short = 'u', long = "username", visible_alias = "user")]
    pub user: Option<String>,

    /// How to log in, as `az network bastion ssh --auth-type`: `password` (ssh asks for it; no
    /// keys are offered), `ssh-key` (the key of --ssh-key), `AAD` (an Entra ID certificate from
    /// `az ssh cert`; needs the Azure CLI, `az login` and its ssh extension) [default: ssh's own
    /// choice].
    #[arg(long, value_enum, ignore_case = true, value_name = "TYPE")]
    pub auth_type: Option<SshAuthType>,

    /// A private key file (passed to ssh as -i; with AAD, the key the certificate is for).
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,

    /// The ssh program to run.
    #[arg(long, default_value = "ssh", value_name = "PROGRAM")]
    pub ssh_command: String,

    /// Extra arguments for ssh (after `--`): options, then an optional remote command.
    #[arg(last = true, value_name = "SSH_ARGS")]
    pub ssh_args: Vec<String>,
}

/// `bastion rdp`.
#[derive(Debug, Args)]
pub struct RdpArgs {
    /// The Bastion and the target behind it.
    #[command(flatten)]
    pub route: RouteArgs,

    /// The RDP port on the target.
    #[arg(long, value_name = "PORT", default_value_t = 3389)]
    pub resource_port: u16,

    /// The local port (0 or absent: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// The user name for the client (FreeRDP's /u:, the .rdp file's `username`).
    #[arg(short = 'u', long = "username", visible_alias = "user")]
    pub user: Option<String>,

    /// Start no client: print the port, write a ready-made .rdp file in a private temporary
    /// directory (removed on exit, or by the next run after a SIGKILL), and keep the tunnel
    /// open until Ctrl-C.
    #[arg(long)]
    pub no_launch: bool,

    /// The RDP client to run instead of the platform's (xfreerdp, xfreerdp3 or wlfreerdp on
    /// PATH; `open` on macOS; mstsc). It gets FreeRDP's arguments: /v:localhost:PORT [/u:USER].
    #[arg(long, value_name = "PROGRAM", conflicts_with = "no_launch")]
    pub rdp_command: Option<String>,

    /// Extra arguments for the RDP client (after `--`).
    #[arg(last = true, value_name = "RDP_ARGS", conflicts_with = "no_launch")]
    pub rdp_args: Vec<String>,
}

/// `--auth-type` of `bastion ssh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SshAuthType {
    /// Password (or keyboard-interactive) authentication only.
    Password,
    /// The private key of --ssh-key.
    SshKey,
    /// An Entra ID SSH certificate from `az ssh cert`.
    #[value(name = "AAD")]
    Aad,
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

    /// The local listener and its connections (the kubeconfig points at the --bind address).
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Name the kubeconfig's context (and its cluster) NAME instead of the cluster's name (an
    /// admin context is then `NAME-admin`, as with `aks credentials`).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Fetch credentials naming the cluster's public FQDN (a private cluster with one): the
    /// server stays the tunnel, and kubectl verifies the API server's certificate against the
    /// public FQDN (tls-server-name) instead of the private one.
    #[arg(long)]
    pub public_fqdn: bool,

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
        "idle_timeout", "max_frame_size", "max_connections", "exit_after_idle", "prewarm",
        "context", "public_fqdn",
    ])]
    pub restore_kubeconfig: bool,

    /// Write the kubeconfig here and keep it after exit (for GUI tools).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,

    /// How kubectl gets its tokens for an AAD-enabled cluster: `bastion kube-token` with this
    /// run's --auth, or kubelogin.
    #[arg(long, value_enum, env = "BASTION_KUBE_AUTH", default_value_t = KubeAuth::Bastion)]
    pub kube_auth: KubeAuth,

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

    /// How kubectl gets its tokens for an AAD-enabled cluster (exec format): `bastion
    /// kube-token` with this run's --auth, or kubelogin.
    #[arg(long, value_enum, env = "BASTION_KUBE_AUTH", default_value_t = KubeAuth::Bastion)]
    pub kube_auth: KubeAuth,
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

/// The file format and signals of `bastion up`, shown by `bastion up --help`.
const UP_HELP: &str = r#"The file: a [defaults] table (optional) and one [[tunnel]] per tunnel. Keys are the long
options of `bastion tunnel` and `bastion aks`:

  [defaults]                  # bind, idle-timeout, max-frame-size, max-connections, prewarm,
  bind = "127.0.0.1"          # subscription, bastion, resource-group, bastion-endpoint,
                              # allow-any-port, admin, skip-checks, kube-auth
  [[tunnel]]
  name = "web"                # unique; letters, digits, - _ .
  port = 2201                 # unique; 0: a free one
  bastion = "/subscriptions/.../bastionHosts/hub"   # or a name with resource-group = "RG"
  target-resource-id = "/subscriptions/.../virtualMachines/web1"
  resource-port = 22
  # also: bind, idle-timeout, max-frame-size, max-connections, prewarm, subscription,
  #       bastion-endpoint, allow-any-port

  [[tunnel]]
  name = "db"
  port = 2202
  bastion = "hub"
  resource-group = "hub-rg"
  target-ip-address = "10.1.20.110"     # IP connect
  resource-port = 3389

  [[tunnel]]
  name = "aks-dev"
  port = 8443
  aks = { name = "dev", resource-group = "dev-rg" }   # and subscription = "..."
  kubeconfig-out = "~/.kube/bastion-dev.yaml"         # relative: from the file's directory
  # also: bastion (name or id; default: discovered), admin, context, skip-checks,
  #       kube-auth ("bastion", the default, or "kubelogin")

An AKS tunnel's kubeconfig points at the tunnel: kubeconfig-out is written atomically (0600)
and removed at exit, or, if it existed, edited in place and put back byte for byte at exit;
without kubeconfig-out it is a temporary file (its path is in the ready line).

Signals: SIGHUP re-reads the file (added tunnels start, removed ones stop and their sessions
are deleted, changed ones restart, unchanged ones keep their connections; a file that no
longer reads is reported and the running set kept). SIGINT or SIGTERM close every tunnel,
delete every session and undo every kubeconfig, then exit 0; a second one exits at once.

Exit codes: 0 after SIGINT/SIGTERM with every session deleted; 2 for a bad file (one line
naming the file, the tunnel and the key); a tunnel that cannot start at launch stops the
others and exits with its code (3 not found, 4 pre-flight, 5 auth, 6 tunnel); 130/143 when
interrupted while starting; 6 if sessions could not be deleted."#;

/// `bastion up`.
#[derive(Debug, Args)]
#[command(after_help = UP_HELP)]
pub struct UpArgs {
    /// The tunnels file (TOML; see below).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
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
