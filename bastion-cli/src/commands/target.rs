//! Shared by `tunnel`, `proxy`, `ssh` and `check tunnel`: the Bastion and target arguments turned
//! into a [`TunnelConfig`], through ARM (`-n/-g`) or directly (`--bastion-endpoint`).

use std::net::IpAddr;

use bastion_arm::model::BastionHost;
use bastion_arm::{ArmClient, EndpointPlan, ResourceId, Usage};
use bastion_core::{Endpoint, EndpointKind, Target, TunnelConfig};

use crate::cli::{BastionArgs, RouteArgs, TargetArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code};

/// The target as given, checked before any network call.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// `--target-resource-id`.
    Resource(String),
    /// `--target-ip-address`.
    Ip(IpAddr),
}

impl TargetSpec {
    /// Validates `--target-resource-id` / `--target-ip-address` and the port.
    pub fn parse(args: &TargetArgs, port: u16) -> CliResult<Self> {
        if port == 0 {
            return Err(CliError::usage("invalid --resource-port 0")
                .hint("give the target's port, from 1 to 65535"));
        }
        match (&args.target_resource_id, &args.target_ip_address) {
            (Some(id), None) => {
                // Checks the shape the Bastion expects, with a message that shows a valid id.
                Target::resource(id.trim(), port).map_err(invalid_target_id)?;
                Ok(TargetSpec::Resource(id.trim().to_owned()))
            }
            (None, Some(ip)) => {
                let ip: IpAddr = ip.trim().parse().map_err(|_| {
                    CliError::usage(format!(
                        "invalid --target-ip-address {ip:?}: not an IP address"
                    ))
                    .hint("give an IPv4 or IPv6 literal such as 10.0.0.4, or use --target-resource-id")
                })?;
                Ok(TargetSpec::Ip(ip))
            }
            _ => Err(CliError::usage("no target")
                .hint("pass --target-resource-id ID or --target-ip-address IP")),
        }
    }

    /// The subscription of a resource id target.
    fn subscription(&self) -> Option<String> {
        match self {
            TargetSpec::Resource(id) => ResourceId::parse(id)
                .ok()
                .map(|id| id.subscription().to_owned()),
            TargetSpec::Ip(_) => None,
        }
    }
}

/// Which Bastion the arguments name, without calling ARM.
pub fn bastion_id(args: &BastionArgs, target: &TargetSpec) -> CliResult<ResourceId> {
    let Some(name) = args.name.as_deref().map(str::trim) else {
        return Err(CliError::usage("no Bastion given").hint(
            "pass --name NAME --resource-group RG (or --name with the Bastion's resource id), or --bastion-endpoint HOST",
        ));
    };
    if name.starts_with('/') {
        let id = ResourceId::parse(name)?;
        if !id.is_type("Microsoft.Network/bastionHosts") {
            return Err(CliError::usage(format!(
                "--name {name:?} is not a Bastion resource id"
            ))
            .hint("give an id of type Microsoft.Network/bastionHosts, or the Bastion's name with --resource-group"));
        }
        return Ok(id);
    }
    let Some(rg) = args.resource_group.as_deref() else {
        return Err(
            CliError::usage(format!("the Bastion '{name}' needs its resource group"))
                .hint("pass --resource-group RG, or --name with the Bastion's full resource id"),
        );
    };
    let subscription = args
        .subscription
        .clone()
        .or_else(|| target.subscription())
        .ok_or_else(|| {
            CliError::usage("no subscription for the Bastion")
                .hint("pass --subscription SUB (or set AZURE_SUBSCRIPTION_ID)")
        })?;
    Ok(ResourceId::for_resource(
        &subscription,
        rg,
        "Microsoft.Network",
        "bastionHosts",
        name,
    )?)
}

/// Resolves the Bastion and the target into a tunnel configuration (ready for
/// [`bastion_core::Tunnel::new`]): with `--bastion-endpoint`
/// directly, otherwise through ARM with the native-client gate.
pub async fn resolve(ctx: &Context, route: &RouteArgs, port: u16) -> CliResult<TunnelConfig> {
    resolve_with(ctx, None, route, port).await
}

/// [`resolve`] through a given ARM client (`bastion up` shares one, and its token cache,
/// between its tunnels); `None`: the context's.
pub async fn resolve_with(
    ctx: &Context,
    arm: Option<&ArmClient>,
    route: &RouteArgs,
    port: u16,
) -> CliResult<TunnelConfig> {
    let (args, target_args) = (&route.bastion, &route.target);
    let target = TargetSpec::parse(target_args, port)?;
    let ip_connect = matches!(target, TargetSpec::Ip(_));
    if let Some(endpoint) = &args.bastion_endpoint {
        let endpoint = Endpoint::parse(endpoint).map_err(|e| {
            CliError::usage(format!("invalid --bastion-endpoint: {e}"))
                .hint("give the Bastion's dnsName, HOST or HOST:PORT, without a path")
        })?;
        let (tunnel_target, bastion_resource_id) = match &target {
            TargetSpec::Resource(id) => (Target::resource(id, port).map_err(usage)?, None),
            TargetSpec::Ip(ip) => {
                let id = bastion_id(args, &target).map_err(|e| {
                    e.or_hint("IP connect with --bastion-endpoint needs the Bastion's id: pass --name ID, or --name NAME --resource-group RG --subscription SUB")
                })?;
                (
                    Target::ip_connect(id.as_str(), *ip, port).map_err(usage)?,
                    Some(id.as_str().to_owned()),
                )
            }
        };
        let mut config = base_config(ctx, endpoint, tunnel_target, target_args);
        config.bastion_resource_id = bastion_resource_id;
        check_config(&config)?;
        return Ok(config);
    }

    let id = bastion_id(args, &target)?;
    let arm = match arm {
        Some(arm) => arm.clone(),
        None => ctx.arm_client()?,
    };
    let bastion = arm.get_bastion(&id).await.map_err(|e| {
        let not_found = e.is_not_found();
        let err = CliError::from(e);
        if not_found {
            CliError::new(
                Code::NotFound,
                format!(
                    "Bastion '{}' not found in resource group '{}' of subscription '{}'",
                    id.name(),
                    id.resource_group().unwrap_or_default(),
                    id.subscription()
                ),
            )
            .hint("check --name, --resource-group and --subscription (`az network bastion list -o table` lists them)")
        } else {
            err
        }
    })?;
    let plan = bastion.native_client_support(Usage::Tunnel {
        port,
        ip_connect,
        allow_custom_port: target_args.allow_any_port,
    })?;
    for w in &plan.warnings {
        ctx.out.warn(w);
    }
    config_for_plan(ctx, &bastion, &plan, &target, port, target_args)
}

/// The tunnel configuration for a Bastion that passed the gate.
pub fn config_for_plan(
    ctx: &Context,
    bastion: &BastionHost,
    plan: &EndpointPlan,
    target: &TargetSpec,
    port: u16,
    target_args: &TargetArgs,
) -> CliResult<TunnelConfig> {
    let tunnel_target = match target {
        TargetSpec::Resource(id) => Target::resource(id, port).map_err(usage)?,
        TargetSpec::Ip(ip) => Target::ip_connect(bastion.id.as_str(), *ip, port).map_err(usage)?,
    };
    let mut config = plan.tunnel_config(tunnel_target, &ctx.scope(), ctx.https_config())?;
    config.allow_any_port = target_args.allow_any_port;
    if plan.kind == EndpointKind::Developer {
        ctx.out.warn(format!(
            "Bastion '{}' is {} SKU: one connection at a time, others wait their turn",
            bastion.display_name(),
            bastion.sku().map(|s| s.as_str()).unwrap_or("Developer")
        ));
    }
    check_config(&config)?;
    Ok(config)
}

fn base_config(
    ctx: &Context,
    endpoint: Endpoint,
    target: Target,
    args: &TargetArgs,
) -> TunnelConfig {
    let mut config = TunnelConfig::new(endpoint, target);
    config.scope = ctx.scope();
    config.http = ctx.https_config();
    config.allow_any_port = args.allow_any_port;
    config
}

/// Checks the combination of settings (IP-connect ports, frame size, ...).
pub fn check_config(config: &TunnelConfig) -> CliResult<()> {
    config.validate().map_err(|e| {
        let err = CliError::from(e);
        if config.target.ip().is_some() {
            CliError {
                code: Code::Preflight,
                ..err
            }
        } else {
            err
        }
    })
}

fn usage(e: bastion_core::ProtocolError) -> CliError {
    match e {
        bastion_core::ProtocolError::InvalidResourceId { .. } => invalid_target_id(e),
        e => CliError::usage(e.to_string()),
    }
}

/// `--target-resource-id` is not a resource id: what is wrong, and the shape it must have.
fn invalid_target_id(e: bastion_core::ProtocolError) -> CliError {
    match e {
        bastion_core::ProtocolError::InvalidResourceId { input, reason } => {
            CliError::usage(format!("invalid --target-resource-id {input:?}: {reason}"))
                .hint(TARGET_ID_HINT)
        }
        e => CliError::usage(format!("invalid --target-resource-id: {e}")).hint(TARGET_ID_HINT),
    }
}

/// What a valid `--target-resource-id` looks like, and where to get one.
const TARGET_ID_HINT: &str = "give the target's full resource id, such as \
    /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME \
    (`az vm show -g RG -n NAME --query id -o tsv` prints it)";
