//! Azure Resource Manager resource ids (see docs/arm-and-aks.md#resource-ids).
//!
//! Ids are compared segment-wise and case-insensitively (the AKS RP returns a lowercase
//! `resourcegroups`), but the text is kept as given so it can be sent back to ARM or to the
//! Bastion unchanged.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a valid id looks like, appended to every parse error.
const EXPECTED: &str = "a valid id looks like \
    /subscriptions/{subscription}/resourceGroups/{group}/providers/{Namespace}/{type}/{name}, \
    e.g. /subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion";

/// A string that is not an ARM resource id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Azure resource id {input:?}: {reason}; {EXPECTED}")]
#[non_exhaustive]
pub struct ResourceIdError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The level an id addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceScope {
    /// `/subscriptions/{sub}`.
    Subscription,
    /// `/subscriptions/{sub}/resourceGroups/{rg}`.
    ResourceGroup,
    /// A resource (top-level or child) in a resource group or directly in a subscription.
    Resource,
}

/// A parsed, normalised ARM resource id.
///
/// Equality and hashing are case-insensitive; [`ResourceId::as_str`] and `Display` give the text
/// with its original casing (after the normalisation of slashes described in
/// docs/arm-and-aks.md#resource-ids).
#[derive(Clone)]
pub struct ResourceId {
    /// The normalised text, original casing.
    text: String,
    /// Lowercased text, the identity used by `Eq`/`Hash`/`Ord`.
    key: String,
    /// Byte ranges of the segments in `text`.
    segments: Vec<(usize, usize)>,
    scope: ResourceScope,
    /// Index of the namespace segment, when a `providers` part is present.
    namespace_index: Option<usize>,
}

impl ResourceId {
    /// Parses and normalises an id: one trailing `/` is dropped, a single `//` collapsed, any
    /// other empty segment rejected; keywords and names are accepted in any case.
    pub fn parse(input: &str) -> Result<Self, ResourceIdError> {
        let err = |reason: &str| ResourceIdError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains whitespace"));
        }
        if trimmed.contains(['?', '#']) {
            return Err(err("it contains a query or fragment"));
        }
        let Some(body) = trimmed.strip_prefix('/') else {
            return Err(err("it must start with /subscriptions/"));
        };
        let body = body.strip_suffix('/').unwrap_or(body);
        let raw: Vec<&str> = body.split('/').collect();
        let mut parts: Vec<&str> = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let seg = raw[i];
            if seg.is_empty() {
                // Only a lone `//` between two segments is collapsed (an empty parentResourcePath).
                let prev_ok = i > 0 && !raw[i - 1].is_empty();
                let next_ok = i + 1 < raw.len() && !raw[i + 1].is_empty();
                if !(prev_ok && next_ok) {
                    return Err(err("it has an empty segment"));
                }
            } else {
                parts.push(seg);
            }
            i += 1;
        }
        Self::from_segments(&parts).map_err(|reason| err(&reason))
    }

    fn from_segments(parts: &[&str]) -> Result<Self, String> {
        let kw =
            |idx: usize, word: &str| parts.get(idx).is_some_and(|s| s.eq_ignore_ascii_case(word));
        if !kw(0, "subscriptions") {
            return Err("it must start with /subscriptions/".into());
        }
        if parts.len() < 2 {
            return Err("the subscription id is missing".into());
        }
        let (scope, namespace_index) = if parts.len() == 2 {
            (ResourceScope::Subscription, None)
        } else if kw(2, "resourceGroups") {
            match parts.len() {
                3 => return Err("the resource group name is missing".into()),
                4 => (ResourceScope::ResourceGroup, None),
                _ => {
                    if !kw(4, "providers") {
                        return Err(format!(
                            "expected 'providers' after the resource group, found {:?}",
                            parts[4]
                        ));
                    }
                    Self::check_provider_part(parts, 5)?;
                    (ResourceScope::Resource, Some(5))
                }
            }
        } else if kw(2, "providers") {
            Self::check_provider_part(parts, 3)?;
            (ResourceScope::Resource, Some(3))
        } else {
            return Err(format!(
                "expected 'resourceGroups' or 'providers' after the subscription, found {:?}",
                parts[2]
            ));
        };

        let text = format!("/{}", parts.join("/"));
        let mut segments = Vec::with_capacity(parts.len());
        let mut pos = 1;
        for p in parts {
            segments.push((pos, pos + p.len()));
            pos += p.len() + 1;
        }
        Ok(Self {
            key: text.to_lowercase(),
            text,
            segments,
            scope,
            namespace_index,
        })
    }

    /// Checks `{Namespace}/{type}/{name}[/{type}/{name}]…` starting at `ns`.
    fn check_provider_part(parts: &[&str], ns: usize) -> Result<(), String> {
        if parts.len() <= ns {
            return Err("the resource provider namespace is missing after 'providers'".into());
        }
        let rest = &parts[ns + 1..];
        if rest.is_empty() {
            return Err(format!(
                "the resource type and name are missing after {:?}",
                parts[ns]
            ));
        }
        if !rest.len().is_multiple_of(2) {
            return Err(format!(
                "the resource type {:?} has no name after it",
                rest[rest.len() - 1]
            ));
        }
        if rest
            .chunks(2)
            .any(|pair| pair[0].eq_ignore_ascii_case("providers"))
        {
            return Err("extension resources (a nested '/providers/') are not supported".into());
        }
        Ok(())
    }

    /// The id of a subscription.
    pub fn for_subscription(subscription: &str) -> Result<Self, ResourceIdError> {
        Self::parse(&format!("/subscriptions/{subscription}"))
            .and_then(|id| check_single(id, &[subscription], subscription))
    }

    /// The id of a resource group.
    pub fn for_resource_group(subscription: &str, group: &str) -> Result<Self, ResourceIdError> {
        Self::parse(&format!(
            "/subscriptions/{subscription}/resourceGroups/{group}"
        ))
        .and_then(|id| check_single(id, &[subscription, group], group))
    }

    /// The id of a top-level resource, e.g. `("s", "rg", "Microsoft.Network", "bastionHosts", "b")`.
    pub fn for_resource(
        subscription: &str,
        group: &str,
        namespace: &str,
        resource_type: &str,
        name: &str,
    ) -> Result<Self, ResourceIdError> {
        Self::parse(&format!(
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}/{resource_type}/{name}"
        ))
        .and_then(|id| check_single(id, &[subscription, group, namespace, resource_type], name))
    }

    /// The id of a child resource of this resource (`child_type` is one segment).
    pub fn child(&self, child_type: &str, name: &str) -> Result<Self, ResourceIdError> {
        let text = format!("{}/{child_type}/{name}", self.text);
        if self.scope != ResourceScope::Resource {
            return Err(ResourceIdError {
                input: text,
                reason: "only resources have child resources".into(),
            });
        }
        Self::parse(&text).and_then(|id| check_single(id, &[child_type], name))
    }

    /// The normalised text with its original casing: what to send back to ARM or the Bastion.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The level this id addresses.
    pub fn scope(&self) -> ResourceScope {
        self.scope
    }

    fn seg(&self, i: usize) -> &str {
        match self.segments.get(i) {
            Some(&(a, b)) => &self.text[a..b],
            None => "",
        }
    }

    /// The subscription id (GUID text as given).
    pub fn subscription(&self) -> &str {
        self.seg(1)
    }

    /// The resource group name, `None` for subscription-level ids.
    pub fn resource_group(&self) -> Option<&str> {
        (self.seg(2).eq_ignore_ascii_case("resourceGroups")).then(|| self.seg(3))
    }

    /// The resource provider namespace (`Microsoft.Network`), `None` above resource level.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace_index.map(|i| self.seg(i))
    }

    /// The resource type without namespace, children included: `virtualNetworks/subnets`.
    pub fn resource_type(&self) -> Option<String> {
        let ns = self.namespace_index?;
        let types: Vec<&str> = (ns + 1..self.segments.len())
            .step_by(2)
            .map(|i| self.seg(i))
            .collect();
        Some(types.join("/"))
    }

    /// The full type with namespace: `Microsoft.Network/virtualNetworks/subnets`.
    pub fn full_type(&self) -> Option<String> {
        Some(format!("{}/{}", self.namespace()?, self.resource_type()?))
    }

    /// Whether this is a resource of `full_type` (`Microsoft.Network/bastionHosts`), any case.
    pub fn is_type(&self, full_type: &str) -> bool {
        self.full_type()
            .is_some_and(|t| t.to_lowercase() == full_type.to_lowercase())
    }

    /// The last name: the resource name, or the group name, or the subscription id.
    pub fn name(&self) -> &str {
        self.seg(self.segments.len().saturating_sub(1))
    }

    /// The id one level up: child → parent resource → resource group → subscription → `None`.
    pub fn parent(&self) -> Option<Self> {
        let drop = match self.scope {
            ResourceScope::Subscription => return None,
            ResourceScope::ResourceGroup => 2,
            ResourceScope::Resource => {
                let ns = self.namespace_index?;
                if self.segments.len() > ns + 3 {
                    2
                } else {
                    // Top-level resource: drop type, name, namespace and `providers`.
                    4
                }
            }
        };
        self.truncated(self.segments.len().checked_sub(drop)?)
    }

    fn truncated(&self, keep: usize) -> Option<Self> {
        let end = self.segments.get(keep.checked_sub(1)?)?.1;
        Self::parse(&self.text[..end]).ok()
    }

    /// The id of the resource group this id is in (itself for a group id).
    pub fn resource_group_id(&self) -> Option<Self> {
        self.resource_group()?;
        self.truncated(4)
    }

    /// The id of the subscription this id is in.
    pub fn subscription_id(&self) -> Self {
        self.truncated(2).unwrap_or_else(|| self.clone())
    }

    /// For a subnet id (`…/virtualNetworks/{v}/subnets/{s}`), the VNet id; `None` otherwise.
    pub fn vnet_of_subnet(&self) -> Option<Self> {
        if !self.is_type("Microsoft.Network/virtualNetworks/subnets") {
            return None;
        }
        self.truncated(self.segments.len().checked_sub(2)?)
    }

    /// Segment-wise, case-insensitive equality (the same as `==`).
    pub fn is_same(&self, other: &Self) -> bool {
        self.key == other.key
    }

    /// Whether `self` is `other` or an ancestor of it (segment-wise, case-insensitive).
    pub fn contains(&self, other: &Self) -> bool {
        other.key == self.key
            || (other.key.starts_with(&self.key)
                && other.key.as_bytes().get(self.key.len()) == Some(&b'/'))
    }
}

/// Rejects constructor input in which one argument smuggled extra segments.
fn check_single(id: ResourceId, args: &[&str], name: &str) -> Result<ResourceId, ResourceIdError> {
    let bad = args
        .iter()
        .chain(std::iter::once(&name))
        .find(|a| a.is_empty() || a.contains('/'));
    match bad {
        Some(a) => Err(ResourceIdError {
            input: id.text,
            reason: format!("the part {a:?} must be one non-empty segment without '/'"),
        }),
        None => Ok(id),
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for ResourceId {}

impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for ResourceId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ResourceId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({:?})", self.text)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for ResourceId {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: a JSON `null` becomes the type's default, like an absent field.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Serde helper for optional id fields: `null`, `""` and text that is not an id become `None`
/// (one odd field must not make a whole resource unreadable).
pub(crate) fn lenient_id<'de, D>(deserializer: D) -> Result<Option<ResourceId>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.and_then(|t| {
        let t = t.trim();
        if t.is_empty() {
            return None;
        }
        match ResourceId::parse(t) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!("ignoring a field that is not a resource id: {e}");
                None
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const AKS: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks";
    const SUBNET: &str = "/subscriptions/2222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/spoke-vnet/subnets/aks-nodes";

    fn id(s: &str) -> ResourceId {
        s.parse().unwrap()
    }

    #[test]
    fn parses_aks_id_with_lowercase_resourcegroups() {
        let r = id(AKS);
        assert_eq!(r.as_str(), AKS);
        assert_eq!(r.to_string(), AKS);
        assert_eq!(r.scope(), ResourceScope::Resource);
        assert_eq!(r.subscription(), "22222222-2222-2222-2222-222222222222");
        assert_eq!(r.resource_group(), Some("aks-rg"));
        assert_eq!(r.namespace(), Some("Microsoft.ContainerService"));
        assert_eq!(r.resource_type().as_deref(), Some("managedClusters"));
        assert_eq!(
            r.full_type().as_deref(),
            Some("Microsoft.ContainerService/managedClusters")
        );
        assert!(r.is_type("microsoft.containerservice/MANAGEDCLUSTERS"));
        assert_eq!(r.name(), "myaks");
    }

    #[test]
    fn child_resource_type_and_vnet_of_subnet() {
        let s = id(SUBNET);
        assert_eq!(
            s.resource_type().as_deref(),
            Some("virtualNetworks/subnets")
        );
        assert_eq!(s.name(), "aks-nodes");
        let vnet = s.vnet_of_subnet().unwrap();
        assert_eq!(
            vnet.as_str(),
            "/subscriptions/2222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/spoke-vnet"
        );
        assert_eq!(vnet.name(), "spoke-vnet");
        assert_eq!(s.parent().unwrap(), vnet);
        assert!(vnet.vnet_of_subnet().is_none());
        assert!(id(AKS).vnet_of_subnet().is_none());
    }

    #[test]
    fn parent_chain_reaches_subscription() {
        let s = id(SUBNET);
        let vnet = s.parent().unwrap();
        let rg = vnet.parent().unwrap();
        assert_eq!(rg.scope(), ResourceScope::ResourceGroup);
        assert_eq!(rg.as_str(), "/subscriptions/2222/resourceGroups/spoke-rg");
        assert_eq!(rg.name(), "spoke-rg");
        let sub = rg.parent().unwrap();
        assert_eq!(sub.scope(), ResourceScope::Subscription);
        assert_eq!(sub.as_str(), "/subscriptions/2222");
        assert_eq!(sub.name(), "2222");
        assert!(sub.parent().is_none());
        assert_eq!(s.resource_group_id().unwrap(), rg);
        assert_eq!(s.subscription_id(), sub);
        assert!(sub.resource_group_id().is_none());
        assert!(sub.resource_group().is_none());
        assert!(rg.namespace().is_none());
        assert!(rg.resource_type().is_none());
    }

    #[test]
    fn comparison_is_case_insensitive_and_keeps_text() {
        let a = id(AKS);
        let b = id(&AKS
            .to_uppercase()
            .replace("/SUBSCRIPTIONS", "/subscriptions"));
        let c = id(&AKS.replace("resourcegroups", "resourceGroups"));
        assert_eq!(a, b);
        assert!(a.is_same(&c));
        assert_ne!(a.as_str(), c.as_str());
        let set: HashSet<ResourceId> = [a.clone(), b, c].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(a, id(&AKS.replace("myaks", "other")));
    }

    #[test]
    fn normalises_trailing_slash_and_double_slash() {
        let a = id(&format!("{AKS}/"));
        assert_eq!(a.as_str(), AKS);
        let permissions_style =
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Network//bastionHosts/b";
        let b = id(permissions_style);
        assert_eq!(
            b.as_str(),
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Network/bastionHosts/b"
        );
        assert_eq!(b.name(), "b");
    }

    #[test]
    fn rejects_other_empty_segments_and_bad_shapes() {
        let cases = [
            ("", "empty"),
            ("subscriptions/s", "must start"),
            ("//subscriptions/s", "empty segment"),
            ("/subscriptions/s//", "empty segment"),
            ("/subscriptions/s/resourceGroups///rg", "empty segment"),
            ("/subscription/s", "must start"),
            ("/subscriptions", "subscription id is missing"),
            ("/subscriptions/s/resourceGroups", "group name is missing"),
            (
                "/subscriptions/s/resourceGroups/rg/foo",
                "expected 'providers'",
            ),
            ("/subscriptions/s/things/x", "expected 'resourceGroups'"),
            (
                "/subscriptions/s/resourceGroups/rg/providers",
                "namespace is missing",
            ),
            (
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network",
                "type and name",
            ),
            (
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts",
                "no name",
            ),
            (
                "/subscriptions/s/resourceGroups/rg/providers/A.B/t/n/providers/C.D/x/y",
                "extension",
            ),
            ("/subscriptions/s/resourceGroups/my rg", "whitespace"),
            ("/subscriptions/s?api-version=1", "query"),
        ];
        for (input, want) in cases {
            let e = ResourceId::parse(input).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{input:?}: {msg}");
            assert!(
                msg.contains("a valid id looks like /subscriptions/"),
                "{msg}"
            );
        }
    }

    #[test]
    fn subscription_level_resource_and_scopes() {
        let sub = id("/subscriptions/s");
        assert_eq!(sub.scope(), ResourceScope::Subscription);
        let rg = id("/SUBSCRIPTIONS/s/RESOURCEGROUPS/rg");
        assert_eq!(rg.resource_group(), Some("rg"));
        let r = id("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/abc");
        assert_eq!(r.scope(), ResourceScope::Resource);
        assert!(r.resource_group().is_none());
        assert_eq!(r.resource_type().as_deref(), Some("roleDefinitions"));
        assert_eq!(r.parent().unwrap(), sub);
        assert!(sub.contains(&rg));
        assert!(rg.contains(&id("/subscriptions/S/resourceGroups/RG/providers/a.b/c/d")));
        assert!(!rg.contains(&id("/subscriptions/s/resourceGroups/rg2")));
        assert!(rg.contains(&rg));
    }

    #[test]
    fn constructors_build_and_validate() {
        let b =
            ResourceId::for_resource("s", "rg", "Microsoft.Network", "bastionHosts", "b").unwrap();
        assert_eq!(
            b.as_str(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b"
        );
        let cfg = b.child("bastionHostIpConfigurations", "ip").unwrap();
        assert_eq!(
            cfg.resource_type().as_deref(),
            Some("bastionHosts/bastionHostIpConfigurations")
        );
        assert_eq!(cfg.parent().unwrap(), b);
        assert_eq!(
            ResourceId::for_resource_group("s", "rg").unwrap().as_str(),
            "/subscriptions/s/resourceGroups/rg"
        );
        assert_eq!(
            ResourceId::for_subscription("s").unwrap().as_str(),
            "/subscriptions/s"
        );
        assert!(ResourceId::for_resource_group("s", "a/b").is_err());
        assert!(ResourceId::for_resource_group("s", "").is_err());
        assert!(ResourceId::for_resource("s", "rg", "N", "t", "x/y").is_err());
        assert!(
            ResourceId::for_subscription("s")
                .unwrap()
                .child("t", "n")
                .is_err()
        );
    }

    #[test]
    fn lenient_optional_ids() {
        #[derive(serde::Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "lenient_id")]
            id: Option<ResourceId>,
        }
        let parse = |j: &str| serde_json::from_str::<S>(j).unwrap().id;
        assert!(parse(r#"{}"#).is_none());
        assert!(parse(r#"{"id": null}"#).is_none());
        assert!(parse(r#"{"id": ""}"#).is_none());
        assert!(parse(r#"{"id": "garbage"}"#).is_none());
        assert_eq!(
            parse(&format!(r#"{{"id": "{AKS}"}}"#)).unwrap().as_str(),
            AKS
        );
    }

    #[test]
    fn serde_round_trip_as_string() {
        let r = id(AKS);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{AKS}\""));
        let back: ResourceId = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), AKS);
        let bad: Result<ResourceId, _> = serde_json::from_str("\"/nope\"");
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("invalid Azure resource id")
        );
    }
}
