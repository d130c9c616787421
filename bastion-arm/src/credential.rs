//! Azure clouds (ARM endpoint, token scope, login authority) and the choice of credential.
//!
//! [`build_credential`] turns a [`CredentialKind`] into an `Arc<dyn TokenCredential>`. Every
//! credential that speaks HTTP (managed identity, workload identity, client secret) is given
//! our transport, so the whole process has one HTTP stack (hyper + rustls/ring).

use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, HttpClient, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use bastion_core::StaticTokenCredential;
use url::Url;

use crate::error::ArmError;

/// An Azure cloud: where ARM is and which token scope it accepts (see
/// docs/arm-and-aks.md#clouds-and-token-scopes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Cloud {
    /// Azure public cloud (`management.azure.com`).
    #[default]
    AzureCloud,
    /// Azure US Government (`management.usgovcloudapi.net`).
    AzureUSGovernment,
    /// Azure China, operated by 21Vianet (`management.chinacloudapi.cn`).
    AzureChinaCloud,
    /// A private cloud or the emulator.
    Custom {
        /// The ARM endpoint, e.g. `https://arm.emulator.test:8443/`.
        arm_endpoint: Url,
        /// The token scope, e.g. `https://management.azure.com/.default`.
        scope: String,
        /// The Entra ID authority host, e.g. `https://login.microsoftonline.com`; `None` keeps
        /// the public cloud's.
        authority: Option<Url>,
    },
}

const PUBLIC_ARM: &str = "https://management.azure.com/";
const PUBLIC_LOGIN: &str = "https://login.microsoftonline.com";

impl Cloud {
    /// Parses a cloud name as the Azure CLI spells it (`AzureCloud`, `AzureUSGovernment`,
    /// `AzureChinaCloud`), case-insensitively; `public`, `usgov` and `china` are accepted too.
    pub fn from_name(name: &str) -> Option<Cloud> {
        match name.to_ascii_lowercase().as_str() {
            "azurecloud" | "public" | "azurepubliccloud" => Some(Cloud::AzureCloud),
            "azureusgovernment" | "usgov" | "usgovernment" => Some(Cloud::AzureUSGovernment),
            "azurechinacloud" | "china" => Some(Cloud::AzureChinaCloud),
            _ => None,
        }
    }

    /// A custom cloud whose ARM endpoint is `arm_endpoint` and which accepts the public cloud's
    /// scope (how the emulator is configured).
    pub fn custom(arm_endpoint: Url) -> Cloud {
        Cloud::Custom {
            arm_endpoint,
            scope: format!("{PUBLIC_ARM}.default"),
            authority: None,
        }
    }

    /// The ARM endpoint, with a trailing `/`.
    pub fn arm_endpoint(&self) -> Url {
        let text = match self {
            Cloud::AzureCloud => PUBLIC_ARM,
            Cloud::AzureUSGovernment => "https://management.usgovcloudapi.net/",
            Cloud::AzureChinaCloud => "https://management.chinacloudapi.cn/",
            Cloud::Custom { arm_endpoint, .. } => return arm_endpoint.clone(),
        };
        // Proven invariant: the three constants above are valid absolute URLs.
        #[allow(clippy::expect_used)]
        Url::parse(text).expect("constant ARM endpoint URL")
    }

    /// The token scope used for every ARM call and for the Bastion `aztoken` (SDK style,
    /// `{arm}/.default`).
    pub fn scope(&self) -> String {
        match self {
            Cloud::AzureCloud => "https://management.azure.com/.default".into(),
            Cloud::AzureUSGovernment => "https://management.usgovcloudapi.net/.default".into(),
            Cloud::AzureChinaCloud => "https://management.chinacloudapi.cn/.default".into(),
            Cloud::Custom { scope, .. } => scope.clone(),
        }
    }

    /// The Azure CLI style scope (`https://management.core.windows.net//.default`, double slash
    /// kept), which ARM accepts as well.
    pub fn cli_scope(&self) -> String {
        match self {
            Cloud::AzureCloud => "https://management.core.windows.net//.default".into(),
            Cloud::AzureUSGovernment => {
                "https://management.core.usgovcloudapi.net//.default".into()
            }
            Cloud::AzureChinaCloud => "https://management.core.chinacloudapi.cn//.default".into(),
            Cloud::Custom { scope, .. } => scope.clone(),
        }
    }

    /// The Entra ID authority host.
    pub fn authority(&self) -> String {
        match self {
            Cloud::AzureCloud => PUBLIC_LOGIN.into(),
            Cloud::AzureUSGovernment => "https://login.microsoftonline.us".into(),
            Cloud::AzureChinaCloud => "https://login.chinacloudapi.cn".into(),
            Cloud::Custom { authority, .. } => authority
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
                .unwrap_or_else(|| PUBLIC_LOGIN.into()),
        }
    }

    /// The azure_core view of this cloud (it decides the authority host of Entra credentials).
    pub fn cloud_configuration(&self) -> CloudConfiguration {
        match self {
            Cloud::AzureCloud => CloudConfiguration::AzurePublic,
            Cloud::AzureUSGovernment => CloudConfiguration::AzureGovernment,
            Cloud::AzureChinaCloud => CloudConfiguration::AzureChina,
            Cloud::Custom { .. } => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = self.authority();
                custom.into()
            }
        }
    }
}

/// Which credential obtains the ARM access token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    /// The Azure CLI (`az login`), then the Azure Developer CLI (`azd auth login`).
    DeveloperTools,
    /// The Azure CLI only, optionally for a given tenant (`az account get-access-token --tenant`).
    AzureCli {
        /// The tenant to get the token for; `None` uses the CLI's default.
        tenant_id: Option<String>,
    },
    /// The managed identity of the VM / App Service this runs on.
    ManagedIdentity {
        /// Client id of a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
    },
    /// Kubernetes workload identity (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity,
    /// A service principal secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
    ClientSecret,
    /// A ready-made access token (tests, the emulator, a token the caller already holds).
    StaticToken(String),
}

impl std::fmt::Debug for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialKind::DeveloperTools => f.write_str("DeveloperTools"),
            CredentialKind::AzureCli { tenant_id } => f
                .debug_struct("AzureCli")
                .field("tenant_id", tenant_id)
                .finish(),
            CredentialKind::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            CredentialKind::WorkloadIdentity => f.write_str("WorkloadIdentity"),
            CredentialKind::ClientSecret => f.write_str("ClientSecret"),
            CredentialKind::StaticToken(_) => f.write_str("StaticToken(<redacted>)"),
        }
    }
}

/// Builds the credential `kind` for `cloud`. HTTP-based credentials send their requests
/// through `http_client` (use [`crate::HyperTransport`]).
///
/// Environment-based kinds fail up front, naming every missing variable.
pub fn build_credential(
    kind: &CredentialKind,
    cloud: &Cloud,
    http_client: Arc<dyn HttpClient>,
) -> Result<Arc<dyn TokenCredential>, ArmError> {
    build_with_env(kind, cloud, http_client, &|name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    })
}

fn client_options(cloud: &Cloud, http_client: Arc<dyn HttpClient>) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(http_client)),
        cloud: Some(Arc::new(cloud.cloud_configuration())),
        ..ClientOptions::default()
    }
}

fn require(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
    what: &str,
) -> Result<Vec<String>, ArmError> {
    let values: Vec<Option<String>> = names.iter().map(|n| env(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(ArmError::Config(format!(
            "{what} needs the environment variable{} {} (missing: {})",
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            missing.join(", ")
        )));
    }
    Ok(values.into_iter().flatten().collect())
}

fn identity_error(what: &str, e: azure_core::Error) -> ArmError {
    ArmError::Config(format!("cannot set up the {what} credential: {e}"))
}

fn build_with_env(
    kind: &CredentialKind,
    cloud: &Cloud,
    http_client: Arc<dyn HttpClient>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenCredential>, ArmError> {
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::DeveloperTools => {
            DeveloperToolsCredential::new(None).map_err(|e| identity_error("developer tools", e))?
        }
        CredentialKind::AzureCli { tenant_id } => {
            AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: tenant_id.clone(),
                ..AzureCliCredentialOptions::default()
            }))
            .map_err(|e| identity_error("Azure CLI", e))?
        }
        CredentialKind::ManagedIdentity { client_id } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(cloud, http_client),
            }))
            .map_err(|e| identity_error("managed identity", e))?
        }
        CredentialKind::WorkloadIdentity => {
            let v = require(
                env,
                &[
                    "AZURE_TENANT_ID",
                    "AZURE_CLIENT_ID",
                    "AZURE_FEDERATED_TOKEN_FILE",
                ],
                "workload identity",
            )?;
            let [tenant, client, file] = <[String; 3]>::try_from(v)
                .map_err(|_| ArmError::Config("workload identity settings".into()))?;
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(cloud, http_client),
                },
                client_id: Some(client),
                tenant_id: Some(tenant),
                token_file_path: Some(file.into()),
            }))
            .map_err(|e| identity_error("workload identity", e))?
        }
        CredentialKind::ClientSecret => {
            let v = require(
                env,
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"],
                "a client-secret credential",
            )?;
            let [tenant, client, secret] = <[String; 3]>::try_from(v)
                .map_err(|_| ArmError::Config("client secret settings".into()))?;
            ClientSecretCredential::new(
                &tenant,
                client,
                Secret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(cloud, http_client),
                }),
            )
            .map_err(|e| identity_error("client secret", e))?
        }
        CredentialKind::StaticToken(token) => {
            if token.trim().is_empty() {
                return Err(ArmError::Config("the static access token is empty".into()));
            }
            Arc::new(StaticTokenCredential::from_jwt(token.trim()))
        }
    };
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{AsyncRawResponse, Request};

    #[derive(Debug)]
    struct NoHttp;

    #[async_trait::async_trait]
    impl HttpClient for NoHttp {
        async fn execute_request(&self, _: &Request) -> azure_core::Result<AsyncRawResponse> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                "no network in unit tests",
            ))
        }
    }

    #[test]
    fn clouds_have_the_spec_endpoints_and_scopes() {
        assert_eq!(
            Cloud::AzureCloud.arm_endpoint().as_str(),
            "https://management.azure.com/"
        );
        assert_eq!(
            Cloud::AzureUSGovernment.scope(),
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(
            Cloud::AzureChinaCloud.cli_scope(),
            "https://management.core.chinacloudapi.cn//.default"
        );
        assert_eq!(
            Cloud::from_name("azureusgovernment"),
            Some(Cloud::AzureUSGovernment)
        );
        let custom = Cloud::custom(Url::parse("https://arm.test:9443/").unwrap());
        assert_eq!(custom.arm_endpoint().port(), Some(9443));
        assert_eq!(custom.scope(), "https://management.azure.com/.default");
    }

    #[test]
    fn client_secret_names_every_missing_variable() {
        let env = |name: &str| (name == "AZURE_TENANT_ID").then(|| "t".to_owned());
        let err = build_with_env(
            &CredentialKind::ClientSecret,
            &Cloud::AzureCloud,
            Arc::new(NoHttp),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"),
            "{err}"
        );
        assert!(err.contains("missing: AZURE_CLIENT_ID"), "{err}");
    }

    #[test]
    fn workload_identity_names_the_token_file_variable() {
        let err = build_with_env(
            &CredentialKind::WorkloadIdentity,
            &Cloud::AzureCloud,
            Arc::new(NoHttp),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("AZURE_FEDERATED_TOKEN_FILE"), "{err}");
    }

    #[tokio::test]
    async fn static_token_is_returned_and_never_printed() {
        let kind = CredentialKind::StaticToken("header.eyJleHAiOjQxMDI0NDQ4MDB9.sig".into());
        assert!(!format!("{kind:?}").contains("header"));
        let cred = build_with_env(&kind, &Cloud::AzureCloud, Arc::new(NoHttp), &|_| None).unwrap();
        assert!(!format!("{cred:?}").contains("header"));
        let token = cred.get_token(&["s"], None).await.unwrap();
        assert_eq!(token.token.secret(), "header.eyJleHAiOjQxMDI0NDQ4MDB9.sig");
        assert_eq!(token.expires_on.unix_timestamp(), 4_102_444_800);
    }
}
