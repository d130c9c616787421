//! The ARM access token sent as `aztoken`: taken from any `azure_core` [`TokenCredential`] and
//! cached. Within five minutes of its expiry it is refreshed in the background while the cached
//! one is still handed out, so no connection waits for the credential once a token is cached;
//! only a token about to expire (or none) is fetched on the caller's path, and concurrent
//! callers share that one fetch.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{Error, Result, Secret};

/// A background refresh starts when less than this remains.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// A cached token is handed out while more than this remains; below it, callers wait for a
/// fresh one (the Bastion must still accept it when the POST arrives).
pub(crate) const MIN_VALIDITY: Duration = Duration::from_secs(60);
/// Token acquisition gives up after this long.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A caching source of ARM tokens for one scope.
#[derive(Clone)]
pub struct TokenSource {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    cache: Arc<Mutex<Cache>>,
    timeout: Duration,
}

#[derive(Default)]
struct Cache {
    token: Option<AccessToken>,
    /// A background refresh is on its way.
    refreshing: bool,
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
            cache: Arc::new(Mutex::new(Cache::default())),
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

    /// A valid token. The cached one while more than a minute of it remains (starting a
    /// background refresh within five minutes of its expiry); otherwise a fresh one, for which
    /// concurrent callers wait together.
    pub async fn token(&self) -> Result<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.token.as_ref() {
            let left = token.expires_on - OffsetDateTime::now_utc();
            if left > MIN_VALIDITY {
                let secret = Secret::new(token.token.secret());
                if left <= REFRESH_MARGIN && !cache.refreshing {
                    cache.refreshing = true;
                    self.refresh_in_background();
                }
                return Ok(secret);
            }
        }
        let fresh = self.fetch().await?;
        let secret = Secret::new(fresh.token.secret());
        cache.token = Some(fresh);
        Ok(secret)
    }

    fn refresh_in_background(&self) {
        let source = self.clone();
        tokio::spawn(async move {
            let fetched = source.fetch().await;
            let mut cache = source.cache.lock().await;
            cache.refreshing = false;
            match fetched {
                Ok(fresh) => cache.token = Some(fresh),
                // The cached token is still good for a while; the next caller tries again.
                Err(e) => tracing::warn!(error = %e, "refreshing the ARM access token failed"),
            }
        });
    }

    async fn fetch(&self) -> Result<AccessToken> {
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
        .map_err(|e| Error::Credential(with_causes(&e)))?;
        tracing::debug!(expires_on = %fresh.expires_on, "acquired an ARM access token");
        Ok(fresh)
    }
}

/// An error with the distinct messages of its sources: azure_core's retry policy replaces the
/// message with its own ("non-transport error occurred which will not be retried") and keeps
/// the cause, such as a plain-http request refused for its address, only as a source.
fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !cause.is_empty() && !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = s.source();
    }
    text
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
    async fn tokens_close_to_expiry_are_refreshed_in_the_background() {
        let cred = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(4 * 60),
        });
        let source = TokenSource::new(cred.clone(), crate::protocol::ARM_SCOPE);
        assert_eq!(source.token().await.unwrap().expose(), "token-0");
        // Still valid for minutes: handed out at once while one refresh starts behind it.
        assert_eq!(source.token().await.unwrap().expose(), "token-0");
        assert_eq!(source.token().await.unwrap().expose(), "token-0");
        tokio::time::timeout(Duration::from_secs(5), async {
            while source.token().await.unwrap().expose() == "token-0" {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        // One refresh, not one per caller (each new token starts at most one more).
        assert!(cred.calls.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn a_token_about_to_expire_is_fetched_before_it_is_used() {
        let cred = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(30),
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
