//! What a client needs to talk to the API server of a kubeconfig's current context without
//! kubectl: the server, the CA and TLS name to check its certificate against, and the user's
//! static credentials.

use base64::Engine as _;
use bastion_core::Secret;
use url::Url;
use yaml_serde::Value;

use super::{Kubeconfig, KubeconfigError, name_of, seq};

/// How to reach the API server of a kubeconfig context, and who to be there.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiServerAccess {
    /// The context's `clusters[].name`.
    pub cluster: String,
    /// `server`: an https URL.
    pub server: Url,
    /// The name the server's certificate is checked against: `tls-server-name`, else the
    /// server's host.
    pub tls_server_name: String,
    /// `certificate-authority-data`, decoded (PEM); `None` when the kubeconfig has none.
    pub certificate_authority: Option<Vec<u8>>,
    /// The context user's static credentials.
    pub credentials: UserCredentials,
}

/// A kubeconfig user's static credentials. Exec plugins and auth providers are not run: a user
/// that has only those has neither field set.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UserCredentials {
    /// `token`, sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// `client-certificate-data` with `client-key-data`, for TLS client authentication.
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate and its private key, decoded (PEM).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// The certificate chain (PEM).
    pub certificate_pem: Vec<u8>,
    /// The private key (PEM).
    pub key_pem: Secret,
}

/// `{section}[].{inner}` of the entry named `name`, if it is a mapping.
fn entry<'a>(doc: &'a Value, section: &str, name: &str, inner: &str) -> Option<&'a Value> {
    seq(doc, section)
        .find(|e| name_of(e) == Some(name))
        .and_then(|e| e.get(inner))
        .filter(|v| v.is_mapping())
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Decodes a `*-data` field (standard base64, whitespace ignored).
fn data(v: &Value, entry: &str, field: &str) -> Result<Option<Vec<u8>>, KubeconfigError> {
    let Some(encoded) = text(v, field) else {
        return Ok(None);
    };
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map(Some)
        .map_err(|e| KubeconfigError::InvalidData {
            entry: entry.to_owned(),
            field: field.to_owned(),
            reason: e.to_string(),
        })
}

impl Kubeconfig {
    /// The API server and credentials of the current context, for a client of its own (the
    /// `*-data` fields are decoded; files named by `certificate-authority`,
    /// `client-certificate` and `client-key` are not read).
    pub fn api_server_access(&self) -> Result<ApiServerAccess, KubeconfigError> {
        let context_name = self
            .current_context()
            .ok_or(KubeconfigError::NoCurrentContext)?;
        let context = self
            .context(context_name)
            .ok_or_else(|| KubeconfigError::ContextNotFound(context_name.to_owned()))?;
        let cluster = text(context, "cluster")
            .ok_or_else(|| KubeconfigError::ContextWithoutCluster(context_name.to_owned()))?
            .to_owned();
        let user = text(context, "user")
            .ok_or_else(|| KubeconfigError::ContextWithoutUser(context_name.to_owned()))?;
        let cluster_entry = entry(&self.doc, "clusters", &cluster, "cluster").ok_or_else(|| {
            KubeconfigError::ClusterNotFound {
                name: cluster.clone(),
                available: self.cluster_names().join(", "),
            }
        })?;
        let user_entry = entry(&self.doc, "users", user, "user")
            .ok_or_else(|| KubeconfigError::UserNotFound(user.to_owned()))?;

        let server_text = text(cluster_entry, "server")
            .ok_or_else(|| KubeconfigError::NoServer(cluster.clone()))?;
        let invalid_server = || KubeconfigError::InvalidServer {
            cluster: cluster.clone(),
            server: server_text.to_owned(),
        };
        let server = Url::parse(server_text).map_err(|_| invalid_server())?;
        let host = super::server_host(server_text).ok_or_else(invalid_server)?;
        let tls_server_name = text(cluster_entry, "tls-server-name")
            .map(str::to_owned)
            .unwrap_or(host);
        let certificate_authority = data(cluster_entry, &cluster, "certificate-authority-data")?;

        let token = text(user_entry, "token").map(Secret::new);
        let certificate = data(user_entry, user, "client-certificate-data")?;
        let key = data(user_entry, user, "client-key-data")?;
        let client_certificate = match (certificate, key) {
            (Some(certificate_pem), Some(key)) => Some(ClientCertificate {
                certificate_pem,
                key_pem: Secret::new(String::from_utf8(key).map_err(|_| {
                    KubeconfigError::InvalidData {
                        entry: user.to_owned(),
                        field: "client-key-data".to_owned(),
                        reason: "the key is not PEM text".to_owned(),
                    }
                })?),
            }),
            _ => None,
        };
        Ok(ApiServerAccess {
            cluster,
            server,
            tls_server_name,
            certificate_authority,
            credentials: UserCredentials {
                token,
                client_certificate,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN_USER: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://localhost:43157/
    tls-server-name: myaks.privatelink.eastus.azmk8s.io
  name: myaks
contexts:
- context: {cluster: myaks, user: clusterUser_aks-rg_myaks}
  name: myaks
current-context: myaks
kind: Config
users:
- name: clusterUser_aks-rg_myaks
  user: {token: 0123456789abcdef}
"#;

    #[test]
    fn token_user_through_the_tunnel() {
        let access = Kubeconfig::parse(TOKEN_USER)
            .unwrap()
            .api_server_access()
            .unwrap();
        assert_eq!(access.cluster, "myaks");
        assert_eq!(access.server.as_str(), "https://localhost:43157/");
        assert_eq!(access.tls_server_name, "myaks.privatelink.eastus.azmk8s.io");
        assert_eq!(
            access.certificate_authority.as_deref(),
            Some(&b"-----BEGIN CERTIFICATE-----"[..])
        );
        assert_eq!(
            access.credentials.token.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert!(access.credentials.client_certificate.is_none());
        assert!(!format!("{access:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn client_certificate_user_without_tls_server_name_or_ca() {
        let text = TOKEN_USER
            .replace(
                "    tls-server-name: myaks.privatelink.eastus.azmk8s.io\n",
                "",
            )
            .replace(
                "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n",
                "",
            )
            .replace(
                "user: {token: 0123456789abcdef}",
                "user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}",
            );
        let access = Kubeconfig::parse(&text)
            .unwrap()
            .api_server_access()
            .unwrap();
        assert_eq!(access.tls_server_name, "localhost");
        assert!(access.certificate_authority.is_none());
        assert!(access.credentials.token.is_none());
        let cert = access.credentials.client_certificate.unwrap();
        assert_eq!(cert.certificate_pem, b"CERT");
        assert_eq!(cert.key_pem.expose(), "KEY");
    }

    #[test]
    fn exec_users_have_no_static_credentials() {
        let text = TOKEN_USER.replace(
            "user: {token: 0123456789abcdef}",
            "user: {exec: {command: kubelogin, args: [get-token]}}",
        );
        let access = Kubeconfig::parse(&text)
            .unwrap()
            .api_server_access()
            .unwrap();
        assert!(access.credentials.token.is_none());
        assert!(access.credentials.client_certificate.is_none());
    }

    #[test]
    fn what_is_missing_or_broken_is_named() {
        let err = |text: &str| {
            Kubeconfig::parse(text)
                .unwrap()
                .api_server_access()
                .unwrap_err()
        };
        assert!(matches!(
            err(&TOKEN_USER.replace("current-context: myaks\n", "")),
            KubeconfigError::NoCurrentContext
        ));
        assert!(matches!(
            err(&TOKEN_USER.replace(", user: clusterUser_aks-rg_myaks}", "}")),
            KubeconfigError::ContextWithoutUser(c) if c == "myaks"
        ));
        assert!(matches!(
            err(&TOKEN_USER.replace("- name: clusterUser_aks-rg_myaks", "- name: someone")),
            KubeconfigError::UserNotFound(u) if u == "clusterUser_aks-rg_myaks"
        ));
        assert!(matches!(
            err(&TOKEN_USER.replace("  name: myaks\ncontexts", "  name: other\ncontexts")),
            KubeconfigError::ClusterNotFound { .. }
        ));
        assert!(matches!(
            err(&TOKEN_USER.replace("https://localhost", "http://localhost")),
            KubeconfigError::InvalidServer { .. }
        ));
        let e = err(&TOKEN_USER.replace("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "not base64!"));
        assert!(
            e.to_string()
                .contains("certificate-authority-data of 'myaks'"),
            "{e}"
        );
    }
}
