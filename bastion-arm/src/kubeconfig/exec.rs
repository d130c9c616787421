//! The exec users of an AAD cluster's kubeconfig (see docs/arm-and-aks.md#aad-clusters): AKS
//! hands out a kubelogin exec plugin with `--login devicecode`; these transformations either
//! replace it with another plugin (the `bastion kube-token` plugin) or switch kubelogin to
//! the login mode of the credential in use. Pure functions of the YAML tree: no file, no
//! process, no network.

use yaml_serde::{Mapping, Value};

use super::{Kubeconfig, exec_args, is_kubelogin, key, login_mode, name_of};

/// The application id of the AKS AAD server: the audience of the tokens an AAD-enabled
/// cluster's API server accepts (kubelogin's `--server-id`), the same in every cloud.
pub const AKS_AAD_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// The token scope for an AAD-enabled cluster's API server: `{AKS_AAD_SERVER_ID}/.default`.
pub const AKS_AAD_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

/// The `apiVersion` of the exec plugins written by [`Kubeconfig::use_exec_plugin`].
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// An exec credential plugin to put in place of kubelogin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlugin {
    /// The program (an absolute path, so it does not depend on `PATH`).
    pub command: String,
    /// Its arguments. Never a secret: the kubeconfig is a file others may read.
    pub args: Vec<String>,
    /// Environment variables set for it (names and values; never a secret either).
    pub env: Vec<(String, String)>,
    /// What kubectl prints when the program is missing.
    pub install_hint: Option<String>,
}

/// A kubelogin `--login` mode, with what that mode needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KubeloginLogin {
    /// `azurecli`: the Azure CLI's sign-in (`--client-id` dropped; `--tenant-id` kept).
    AzureCli,
    /// `msi`: a managed identity; `client_id` of a user-assigned one (`--client-id`), `None`
    /// for the system-assigned one (`--tenant-id` dropped).
    Msi {
        /// The identity's client id.
        client_id: Option<String>,
    },
    /// `workloadidentity`: kubelogin reads `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST` itself (`--client-id` and
    /// `--tenant-id` dropped so the environment decides).
    WorkloadIdentity,
    /// `spn`: a service principal; kubelogin reads `AZURE_CLIENT_ID` and
    /// `AZURE_CLIENT_SECRET` from its environment (`--client-id`, the AKS client app's, is
    /// dropped; the cluster's `--tenant-id` kept). The secret is never written.
    ServicePrincipal,
}

impl KubeloginLogin {
    /// The value of `--login`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KubeloginLogin::AzureCli => "azurecli",
            KubeloginLogin::Msi { .. } => "msi",
            KubeloginLogin::WorkloadIdentity => "workloadidentity",
            KubeloginLogin::ServicePrincipal => "spn",
        }
    }

    /// `args` for this mode: `--login`/`-l` (any spelling) set to it, `--client-id` and
    /// `--tenant-id` dropped or set as the mode needs, everything else kept in order.
    pub fn rewrite_args(&self, args: &[String]) -> Vec<String> {
        let mode = self.as_str();
        let drop_tenant = matches!(
            self,
            KubeloginLogin::Msi { .. } | KubeloginLogin::WorkloadIdentity
        );
        let mut out = Vec::with_capacity(args.len() + 2);
        let mut has_login = false;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            // The flags whose value is the next argument.
            let takes_value = |flag: &str| a == flag;
            let with_value = |flag: &str| a.starts_with(&format!("{flag}="));
            if takes_value("--login") || takes_value("-l") {
                out.push(a.to_owned());
                out.push(mode.to_owned());
                has_login = true;
                i += 2;
            } else if with_value("--login") || with_value("-l") {
                let flag = a.split('=').next().unwrap_or("--login");
                out.push(format!("{flag}={mode}"));
                has_login = true;
                i += 1;
            } else if takes_value("--client-id") || (drop_tenant && takes_value("--tenant-id")) {
                i += 2;
            } else if with_value("--client-id") || (drop_tenant && with_value("--tenant-id")) {
                i += 1;
            } else {
                out.push(a.to_owned());
                i += 1;
            }
        }
        if !has_login {
            out.push("--login".to_owned());
            out.push(mode.to_owned());
        }
        if let KubeloginLogin::Msi {
            client_id: Some(id),
        } = self
        {
            out.push("--client-id".to_owned());
            out.push(id.clone());
        }
        out
    }
}

/// The kubelogin exec mappings of every user, with the user's name.
fn kubelogin_execs(doc: &mut Value) -> Vec<(String, &mut Mapping)> {
    let Some(users) = doc.get_mut("users").and_then(Value::as_sequence_mut) else {
        return Vec::new();
    };
    users
        .iter_mut()
        .filter_map(|user| {
            let name = name_of(user).unwrap_or_default().to_owned();
            let exec = user
                .get_mut("user")
                .and_then(|u| u.get_mut("exec"))
                .and_then(Value::as_mapping_mut)?;
            is_kubelogin(&Value::Mapping(exec.clone())).then_some((name, exec))
        })
        .collect()
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Sequence(items.into_iter().map(Value::String).collect())
}

impl Kubeconfig {
    /// The names of the users that exec kubelogin (an AAD cluster's user credentials).
    pub fn kubelogin_users(&self) -> Vec<String> {
        let mut doc = self.doc.clone();
        kubelogin_execs(&mut doc)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Replaces every kubelogin exec plugin with `plugin`: `command`, `args`, `env` (`null`
    /// when empty), `installHint`, `apiVersion` [`EXEC_API_VERSION`], `interactiveMode:
    /// Never` and `provideClusterInfo: false`; other users (tokens, certificates, other
    /// plugins) are untouched. Returns the names of the users changed.
    pub fn use_exec_plugin(&mut self, plugin: &ExecPlugin) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, exec) in kubelogin_execs(&mut self.doc) {
            let mut new = Mapping::new();
            new.insert(key("apiVersion"), Value::String(EXEC_API_VERSION.into()));
            new.insert(key("command"), Value::String(plugin.command.clone()));
            new.insert(key("args"), strings(plugin.args.iter().cloned()));
            let env = if plugin.env.is_empty() {
                Value::Null
            } else {
                Value::Sequence(
                    plugin
                        .env
                        .iter()
                        .map(|(k, v)| {
                            let mut m = Mapping::new();
                            m.insert(key("name"), Value::String(k.clone()));
                            m.insert(key("value"), Value::String(v.clone()));
                            Value::Mapping(m)
                        })
                        .collect(),
                )
            };
            new.insert(key("env"), env);
            if let Some(hint) = &plugin.install_hint {
                new.insert(key("installHint"), Value::String(hint.clone()));
            }
            new.insert(key("interactiveMode"), Value::String("Never".into()));
            new.insert(key("provideClusterInfo"), Value::Bool(false));
            *exec = new;
            changed.push(name);
        }
        changed
    }

    /// Switches every kubelogin exec plugin to the login mode `login` (what
    /// `kubelogin convert-kubeconfig -l MODE` does; see [`KubeloginLogin::rewrite_args`]).
    /// Returns the names of the users whose arguments changed.
    pub fn convert_kubelogin(&mut self, login: &KubeloginLogin) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, exec) in kubelogin_execs(&mut self.doc) {
            let args = exec_args(&Value::Mapping(exec.clone()));
            let new_args = login.rewrite_args(&args);
            if new_args != args {
                exec.insert(key("args"), strings(new_args));
                changed.push(name);
            }
        }
        changed
    }

    /// The `--login` mode of the first kubelogin user, lowercased.
    pub fn kubelogin_mode(&self) -> Option<String> {
        let mut doc = self.doc.clone();
        kubelogin_execs(&mut doc)
            .into_iter()
            .find_map(|(_, exec)| login_mode(&exec_args(&Value::Mapping(exec.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://aadaks.privatelink.eastus.azmk8s.io:443
  name: aadaks
contexts:
- context: {cluster: aadaks, user: clusterUser_aks-rg_aadaks}
  name: aadaks
- context: {cluster: aadaks, user: static}
  name: static
current-context: aadaks
kind: Config
users:
- name: clusterUser_aks-rg_aadaks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, 33333333-3333-3333-3333-333333333333, --login, devicecode]
      command: kubelogin
      env: null
      installHint: install kubelogin
      provideClusterInfo: false
- name: static
  user: {token: keep-me}
"#;

    fn args_of(k: &Kubeconfig, user: usize) -> Vec<String> {
        exec_args(&k.as_value()["users"][user]["user"]["exec"])
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn the_plugin_replaces_kubelogin_only() {
        let mut k = Kubeconfig::parse(AAD).unwrap();
        assert_eq!(k.kubelogin_users(), ["clusterUser_aks-rg_aadaks"]);
        let plugin = ExecPlugin {
            command: "/usr/local/bin/bastion".into(),
            args: s(&["kube-token", "--auth", "managed-identity"]),
            env: vec![("AZURE_AUTHORITY_HOST".into(), "https://login.test".into())],
            install_hint: Some("install bastion".into()),
        };
        assert_eq!(k.use_exec_plugin(&plugin), ["clusterUser_aks-rg_aadaks"]);
        let exec = &k.as_value()["users"][0]["user"]["exec"];
        assert_eq!(exec["command"].as_str(), Some("/usr/local/bin/bastion"));
        assert_eq!(exec["apiVersion"].as_str(), Some(EXEC_API_VERSION));
        assert_eq!(exec["interactiveMode"].as_str(), Some("Never"));
        assert_eq!(exec["provideClusterInfo"].as_bool(), Some(false));
        assert_eq!(
            exec["env"][0]["name"].as_str(),
            Some("AZURE_AUTHORITY_HOST")
        );
        assert_eq!(args_of(&k, 0), plugin.args);
        // The static user and the cluster are untouched; nothing is kubelogin any more.
        assert_eq!(
            k.as_value()["users"][1]["user"]["token"].as_str(),
            Some("keep-me")
        );
        assert!(k.kubelogin_users().is_empty());
        assert!(k.use_exec_plugin(&plugin).is_empty());
        // A round trip through text keeps it.
        let back = Kubeconfig::parse(&k.to_yaml().unwrap()).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn an_empty_env_is_null() {
        let mut k = Kubeconfig::parse(AAD).unwrap();
        k.use_exec_plugin(&ExecPlugin {
            command: "/b".into(),
            args: vec![],
            env: vec![],
            install_hint: None,
        });
        let exec = &k.as_value()["users"][0]["user"]["exec"];
        assert!(exec["env"].is_null());
        assert!(exec.get("installHint").is_none());
    }

    #[test]
    fn login_modes_per_credential() {
        let base = Kubeconfig::parse(AAD).unwrap();
        let server = "6dae42f8-4368-4678-94ff-3960e28e3630";
        let tenant = "33333333-3333-3333-3333-333333333333";
        let cases: Vec<(KubeloginLogin, Vec<String>)> = vec![
            (
                KubeloginLogin::AzureCli,
                s(&[
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    server,
                    "--tenant-id",
                    tenant,
                    "--login",
                    "azurecli",
                ]),
            ),
            (
                KubeloginLogin::Msi {
                    client_id: Some("mi-client".into()),
                },
                s(&[
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    server,
                    "--login",
                    "msi",
                    "--client-id",
                    "mi-client",
                ]),
            ),
            (
                KubeloginLogin::Msi { client_id: None },
                s(&[
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    server,
                    "--login",
                    "msi",
                ]),
            ),
            (
                KubeloginLogin::WorkloadIdentity,
                s(&[
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    server,
                    "--login",
                    "workloadidentity",
                ]),
            ),
            (
                KubeloginLogin::ServicePrincipal,
                s(&[
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    server,
                    "--tenant-id",
                    tenant,
                    "--login",
                    "spn",
                ]),
            ),
        ];
        for (login, expected) in cases {
            let mut k = base.clone();
            assert_eq!(
                k.convert_kubelogin(&login),
                ["clusterUser_aks-rg_aadaks"],
                "{login:?}"
            );
            assert_eq!(args_of(&k, 0), expected, "{login:?}");
            assert_eq!(k.kubelogin_mode().as_deref(), Some(login.as_str()));
            // Idempotent.
            assert!(k.convert_kubelogin(&login).is_empty(), "{login:?}");
            assert_eq!(
                k.as_value()["users"][1]["user"]["token"].as_str(),
                Some("keep-me")
            );
        }
    }

    #[test]
    fn other_spellings_of_login() {
        assert_eq!(
            KubeloginLogin::WorkloadIdentity.rewrite_args(&s(&[
                "get-token",
                "-l=devicecode",
                "--tenant-id=t",
                "--client-id=c"
            ])),
            s(&["get-token", "-l=workloadidentity"])
        );
        assert_eq!(
            KubeloginLogin::AzureCli.rewrite_args(&s(&["get-token", "--server-id", "x"])),
            s(&["get-token", "--server-id", "x", "--login", "azurecli"])
        );
    }
}
