//! Unsigned test JWTs standing in for ARM access tokens.
//!
//! The emulators decode tokens without checking a signature (see
//! docs/protocol.md#validation-order): only `aud`, `exp` and `tid` matter. [`mint`] produces
//! tokens of the same three-part shape as real ones so clients treat them as opaque strings
//! exactly as they would a real token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// The audience [`TestClaims::new`] uses: the ARM resource of the public cloud.
pub const DEFAULT_ARM_AUDIENCE: &str = "https://management.azure.com/";

/// Every audience accepted as an ARM token: public cloud, US Government and China, each in
/// its `management.azure`-style and `management.core`-style spelling, with and without the
/// trailing slash.
pub const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.usgovcloudapi.net/",
    "https://management.usgovcloudapi.net",
    "https://management.core.usgovcloudapi.net/",
    "https://management.core.usgovcloudapi.net",
    "https://management.chinacloudapi.cn/",
    "https://management.chinacloudapi.cn",
    "https://management.core.chinacloudapi.cn/",
    "https://management.core.chinacloudapi.cn",
];

/// Whether `aud` is an ARM audience (compared ASCII case-insensitively).
pub fn is_arm_audience(aud: &str) -> bool {
    ARM_AUDIENCES.iter().any(|a| a.eq_ignore_ascii_case(aud))
}

/// The application id of the AKS AAD server (the "Azure Kubernetes Service AAD Server" app):
/// the audience of the tokens an AAD-enabled cluster's API server accepts (see
/// docs/arm-and-aks.md#aad-clusters).
pub const AKS_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// The application id of the Azure Kubernetes Service AAD client, which the kubeconfig of an
/// AAD cluster names as kubelogin's `--client-id`.
pub const AKS_CLIENT_APP_ID: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";

/// Whether `aud` is the AKS AAD server: its application id, or that id as `api://` or
/// `spn:` (compared ASCII case-insensitively).
pub fn is_aks_audience(aud: &str) -> bool {
    let aud = aud.trim_end_matches('/');
    let bare = aud
        .strip_prefix("api://")
        .or_else(|| aud.strip_prefix("spn:"))
        .unwrap_or(aud);
    bare.eq_ignore_ascii_case(AKS_SERVER_APP_ID)
}

/// The audience a token issued for `scope` carries, as Entra ID sets it: the scope without
/// `/.default` (an ARM scope `https://management.azure.com/.default` gives
/// `https://management.azure.com/`, the AKS scope `6dae42f8-…/.default` the bare app id).
pub fn audience_for_scope(scope: &str) -> String {
    let resource = scope
        .trim()
        .strip_suffix(".default")
        .unwrap_or(scope.trim());
    let resource = if resource.ends_with("//") {
        &resource[..resource.len() - 1]
    } else {
        resource
    };
    if resource.starts_with("https://") || resource.starts_with("http://") {
        if resource.ends_with('/') {
            resource.to_owned()
        } else {
            format!("{resource}/")
        }
    } else {
        resource.trim_end_matches('/').to_owned()
    }
}

/// The signature part [`mint`] appends. Not a real signature: nothing checks it.
const FAKE_SIGNATURE: &str = "dGVzdC1zaWduYXR1cmU";

/// The claims of a test token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClaims {
    /// Audience; an ARM audience for a token the Bastion emulator accepts.
    pub aud: String,
    /// Tenant id.
    pub tid: String,
    /// Object id of the principal.
    pub oid: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// User principal name, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl TestClaims {
    /// Claims for `tenant`/`oid` with the default ARM audience, valid for one hour.
    pub fn new(tenant: impl Into<String>, oid: impl Into<String>) -> Self {
        TestClaims {
            aud: DEFAULT_ARM_AUDIENCE.to_owned(),
            tid: tenant.into(),
            oid: oid.into(),
            exp: unix_now().saturating_add(3600),
            upn: None,
        }
    }

    /// Sets the expiry to `ttl` from now.
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.exp = unix_now().saturating_add(secs);
        self
    }

    /// Sets an expiry in the past (one minute ago).
    pub fn expired(mut self) -> Self {
        self.exp = unix_now().saturating_sub(60);
        self
    }

    /// Sets the expiry to an absolute Unix time.
    pub fn expires_at(mut self, unix_seconds: i64) -> Self {
        self.exp = unix_seconds;
        self
    }

    /// Sets the audience.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = aud.into();
        self
    }

    /// Sets the user principal name.
    pub fn upn(mut self, upn: impl Into<String>) -> Self {
        self.upn = Some(upn.into());
        self
    }

    /// Whether `exp` is in the future.
    pub fn is_unexpired(&self) -> bool {
        self.exp > unix_now()
    }

    /// Seconds until `exp` (negative once expired).
    pub fn seconds_left(&self) -> i64 {
        self.exp.saturating_sub(unix_now())
    }

    /// Mints the token: shorthand for [`mint`].
    pub fn mint(&self) -> String {
        mint(self)
    }
}

#[derive(Serialize)]
struct WireClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    tid: &'a str,
    oid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upn: Option<&'a str>,
}

/// Mints an unsigned JWT: header `{"alg":"none","typ":"JWT"}`, the claims (plus `iss`, `iat`,
/// `nbf` for realism) and a fixed fake signature, each part base64url without padding.
pub fn mint(claims: &TestClaims) -> String {
    let now = unix_now();
    let wire = WireClaims {
        aud: &claims.aud,
        iss: format!("https://sts.windows.net/{}/", claims.tid),
        iat: now.saturating_sub(60),
        nbf: now.saturating_sub(60),
        exp: claims.exp,
        tid: &claims.tid,
        oid: &claims.oid,
        upn: claims.upn.as_deref(),
    };
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    // Serialising a struct of strings and integers cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default());
    format!("{header}.{payload}.{FAKE_SIGNATURE}")
}

#[derive(Deserialize)]
struct LenientClaims {
    aud: Option<serde_json::Value>,
    tid: Option<String>,
    oid: Option<String>,
    exp: Option<serde_json::Number>,
    upn: Option<String>,
}

/// Decodes a JWT's claims without checking its signature. Errors say what is wrong, never
/// repeat the token.
pub fn decode(token: &str) -> Result<TestClaims, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "not a JWT: expected 3 dot-separated parts, found {}",
            parts.len()
        ));
    }
    let payload = parts[1];
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| "JWT payload is not base64url".to_owned())?;
    let claims: LenientClaims = serde_json::from_slice(&bytes)
        .map_err(|e| format!("JWT payload is not a JSON object: {e}"))?;
    let aud = match claims.aud {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str())
            .find(|a| is_arm_audience(a))
            .or_else(|| list.iter().find_map(|v| v.as_str()))
            .ok_or("JWT `aud` is an empty list")?
            .to_owned(),
        _ => return Err("JWT has no `aud` claim".into()),
    };
    let exp = claims
        .exp
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
        .ok_or("JWT has no numeric `exp` claim")?;
    Ok(TestClaims {
        aud,
        tid: claims.tid.ok_or("JWT has no `tid` claim")?,
        oid: claims.oid.unwrap_or_default(),
        exp,
        upn: claims.upn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_then_decode_round_trips() {
        let claims = TestClaims::new("tenant-1", "oid-1")
            .expires_in(Duration::from_secs(600))
            .upn("alice@example.test");
        let token = mint(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert!(token.starts_with("eyJ"), "looks like a real JWT");
        assert!(!token.contains('='));
        let back = decode(&token).unwrap();
        assert_eq!(back, claims);
        assert!(back.is_unexpired());
        assert!((590..=600).contains(&back.seconds_left()));
    }

    #[test]
    fn header_is_alg_none() {
        let token = TestClaims::new("t", "o").mint();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"none","typ":"JWT"}"#);
    }

    #[test]
    fn expired_claims_are_expired() {
        let claims = TestClaims::new("t", "o").expired();
        assert!(!decode(&mint(&claims)).unwrap().is_unexpired());
    }

    #[test]
    fn decode_rejects_garbage_without_echoing_it() {
        for bad in ["", "abc", "a.b", "a.!!!.c", "a.e30.c"] {
            let err = decode(bad).unwrap_err();
            assert!(!err.is_empty());
        }
        let no_tid = format!("x.{}.y", URL_SAFE_NO_PAD.encode(br#"{"aud":"a","exp":1}"#));
        assert!(decode(&no_tid).unwrap_err().contains("tid"));
    }

    #[test]
    fn decode_accepts_padding_and_audience_lists() {
        let payload = URL_SAFE.encode(
            br#"{"aud":["api://x","https://management.core.windows.net/"],"tid":"t","exp":99.0}"#,
        );
        let c = decode(&format!("h.{payload}.")).unwrap();
        assert_eq!(c.aud, "https://management.core.windows.net/");
        assert_eq!(c.exp, 99);
    }

    #[test]
    fn audiences_follow_the_scope() {
        assert_eq!(
            audience_for_scope("https://management.azure.com/.default"),
            "https://management.azure.com/"
        );
        assert_eq!(
            audience_for_scope("https://management.core.windows.net//.default"),
            "https://management.core.windows.net/"
        );
        assert_eq!(
            audience_for_scope("https://management.azure.com"),
            "https://management.azure.com/"
        );
        let aks = audience_for_scope(&format!("{AKS_SERVER_APP_ID}/.default"));
        assert_eq!(aks, AKS_SERVER_APP_ID);
        assert!(is_aks_audience(&aks));
        assert!(!is_arm_audience(&aks));
        assert!(is_aks_audience(&format!("api://{AKS_SERVER_APP_ID}")));
        assert!(!is_aks_audience("https://management.azure.com/"));
        assert!(!is_aks_audience(AKS_CLIENT_APP_ID));
    }

    #[test]
    fn arm_audiences() {
        for aud in [
            "https://management.azure.com/",
            "https://management.azure.com",
            "https://management.core.windows.net/",
            "https://management.core.windows.net",
            "https://management.usgovcloudapi.net/",
            "https://management.core.chinacloudapi.cn",
            "HTTPS://MANAGEMENT.AZURE.COM/",
        ] {
            assert!(is_arm_audience(aud), "{aud}");
        }
        for aud in ["https://graph.microsoft.com", "", "management.azure.com"] {
            assert!(!is_arm_audience(aud), "{aud}");
        }
    }
}
