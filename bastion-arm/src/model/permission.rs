//! `Microsoft.Authorization/permissions`: the caller's effective permissions at a scope.

use serde::{Deserialize, Serialize};

use crate::resource_id::null_as_default;

/// One entry of the permissions API (roughly one per effective role assignment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Permission {
    /// Allowed control-plane actions (patterns).
    #[serde(deserialize_with = "null_as_default")]
    pub actions: Vec<String>,
    /// Actions subtracted from `actions` of this entry only.
    #[serde(deserialize_with = "null_as_default")]
    pub not_actions: Vec<String>,
    /// Allowed data-plane actions (not used by the checks).
    #[serde(deserialize_with = "null_as_default")]
    pub data_actions: Vec<String>,
    /// Data actions subtracted from `data_actions`.
    #[serde(deserialize_with = "null_as_default")]
    pub not_data_actions: Vec<String>,
}

/// A page of the permissions API: `{"value": [...], "nextLink": ...}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PermissionPage {
    /// The entries.
    #[serde(deserialize_with = "null_as_default")]
    pub value: Vec<Permission>,
    /// The absolute URL of the next page.
    pub next_link: Option<String>,
}

impl Permission {
    /// An entry from action and not-action patterns (no data actions).
    pub fn new(actions: &[&str], not_actions: &[&str]) -> Self {
        Self {
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }
}
