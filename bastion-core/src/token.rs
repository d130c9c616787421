//! The ARM access token sent as `aztoken`: taken from any `azure_core` [`TokenCredential`],
//! cached until five minutes before it expires, with concurrent callers sharing one refresh.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{Error, Result, Secret};

/// A token is refreshed when less than this remains.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Token acquisition gives up after this long.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A caching source of ARM tokens for one scope.
#[derive(Clone)]
pub struct TokenSource {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    cache: Arc<Mutex<Option<AccessToken>>>,
    timeout: Duration,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `scope` (e.g. [`crate::protocol::ARM_SCOPE`]).
    pub fn new(credential: Arc<dyn TokenCredential>, scope: impl Into<String>) -> Self {
        Self {
            credential,
            scope: scope.into(),
            cache: Arc::new(Mutex::new(None)),
            timeout: ACQUIRE_TIMEOUT,
        }
    }

    /// Changes the acquisition timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The scope tokens are requested for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The credential behind this source.
    pub fn credential(&self) -> &Arc<dyn TokenCredential> {
        &self.credential
    }

    /// A valid token: the cached one while more than [`REFRESH_MARGIN`] remains, otherwise a
    /// fresh one. Concurrent callers wait for the same refresh instead of starting their own.
    pub async fn token(&self) -> Result<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref()
            && token.expires_on - OffsetDateTime::now_utc() > REFRESH_MARGIN
        {
            return Ok(Secret::new(token.token.secret()));
        }
        let scopes = [self.scope.as_str()];
        let fresh = tokio::time::timeout(
            self.timeout,
            self.credential
                .get_token(&scopes, Some(TokenRequestOptions::default())),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: "getting an Azure access token",
            after: self.timeout,
        })?
        .map_err(|e| Error::Credential(e.to_string()))?;
        let secret = Secret::new(fresh.token.secret());
        tracing::debug!(expires_on = %fresh.expires_on, "acquired an ARM access token");
        *cache = Some(fresh);
        Ok(secret)
    }
}

/// A credential that always returns the same token: for the emulator, tests, and tokens obtained
/// elsewhere (e.g. `az account get-access-token`).
#[derive(Clone)]
pub struct StaticTokenCredential {
    token: Secret,
    expires_on: OffsetDateTime,
}

impl StaticTokenCredential {
    /// A static token valid until `expires_on`.
    pub fn new(token: impl Into<String>, expires_on: OffsetDateTime) -> Self {
        Self {
            token: Secret::new(token),
            expires_on,
        }
    }

    /// A static token whose expiry is read from its JWT `exp` claim, or one hour from now when it
    /// is not a JWT.
    pub fn from_jwt(token: impl Into<String>) -> Self {
        let token = token.into();
        let expires_on = jwt_expiry(&token)
            .unwrap_or_else(|| OffsetDateTime::now_utc() + Duration::from_secs(3600));
        Self::new(token, expires_on)
    }
}

impl std::fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokenCredential")
            .field("token", &self.token)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.token.expose().to_owned(),
            self.expires_on,
        ))
    }
}

/// The `exp` claim of a JWT, without verifying anything.
fn jwt_expiry(token: &str) -> Option<OffsetDateTime> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    OffsetDateTime::from_unix_timestamp(v.get("exp")?.as_i64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        lifetime: Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, ["https://management.azure.com/.default"]);
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(AccessToken::new(
                format!("token-{n}"),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cred = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(3600),
        });
        let source = TokenSource::new(cred.clone(), crate::protocol::ARM_SCOPE);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = source.clone();
                tokio::spawn(async move { s.token().await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "token-0");
        }
        assert_eq!(cred.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn tokens_close_to_expiry_are_refreshed() {
        let cred = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(4 * 60),
        });
        let source = TokenSource::new(cred.clone(), crate::protocol::ARM_SCOPE);
        assert_eq!(source.token().await.unwrap().expose(), "token-0");
        assert_eq!(source.token().await.unwrap().expose(), "token-1");
    }

    #[test]
    fn static_credential_reads_jwt_expiry() {
        use base64::Engine as _;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"exp":4102444800}"#);
        let cred = StaticTokenCredential::from_jwt(format!("e30.{payload}."));
        assert_eq!(cred.expires_on.unix_timestamp(), 4102444800);
        assert!(!format!("{cred:?}").contains(&payload));
    }
}
