//! A throw-away certificate authority for the emulators (this one and the ARM emulator).
//!
//! Every server certificate is issued by one generated CA, so a client only has to trust
//! [`TestCa::ca_pem`] — exactly how a user would configure a custom CA bundle (see
//! docs/protocol.md#tls-and-alpn).
//!
//! A CA file left behind (a stale `BASTION_CA_FILE`, say) must not become a way to be trusted
//! for real hosts, so the CA is fenced in:
//!
//! - **Name constraints** (critical) permit only the emulators' names: DNS names under `.test`
//!   and `localhost`, the loopback addresses 127.0.0.0/8 and `::1`, and the exact extra names
//!   given to [`TestCa::permitting`] (the sandbox's AKS FQDNs, for example). A verifier that
//!   honours them (rustls/webpki, Go, OpenSSL) refuses any other name signed by it.
//! - **A short validity**: from an hour ago (clock skew) to 7 days from now.
//!
//! [`TestCa::issue`] and [`TestCa::server_config`] refuse a name the CA does not permit.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::EmulatorError;

/// How long a generated CA (and every certificate it issues) stays valid.
pub(crate) const VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far back validity starts, for clocks that are a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// DNS names every test CA permits (each with its subdomains): the reserved `.test` TLD and
/// `localhost`.
pub(crate) const PERMITTED_DNS: [&str; 2] = ["test", "localhost"];

/// A generated test CA. Cheap to clone: clones share the same key and certificate.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<CaInner>,
}

struct CaInner {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    permitted: Permitted,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
}

/// What the CA's name constraints permit.
#[derive(Debug, Clone)]
struct Permitted {
    /// DNS subtrees: the name itself and its subdomains (lowercase, no trailing dot).
    dns: Vec<String>,
    /// Address ranges: (network, prefix length).
    ip: Vec<(IpAddr, u8)>,
}

impl Permitted {
    fn new(extra: &[&str]) -> Result<Permitted, EmulatorError> {
        let mut p = Permitted {
            dns: PERMITTED_DNS.iter().map(|s| (*s).to_owned()).collect(),
            ip: vec![
                (IpAddr::from([127, 0, 0, 0]), 8),
                (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
            ],
        };
        for name in extra {
            let name = clean(name);
            if name.is_empty() {
                continue;
            }
            if p.allows(&name) {
                continue;
            }
            match name.parse::<IpAddr>() {
                Ok(ip) => p.ip.push((ip, if ip.is_ipv4() { 32 } else { 128 })),
                Err(_) => {
                    if !bastion_core::is_dns_name(&name) || !name.contains('.') {
                        return Err(EmulatorError::Certificate(format!(
                            "{name:?} cannot be permitted by a test CA: give a full DNS name or an IP address"
                        )));
                    }
                    p.dns.push(name);
                }
            }
        }
        Ok(p)
    }

    /// Whether a (cleaned, lowercase) name is inside the constraints.
    fn allows(&self, name: &str) -> bool {
        match name.parse::<IpAddr>() {
            Ok(ip) => self.ip.iter().any(|(net, len)| in_subnet(ip, *net, *len)),
            Err(_) => self
                .dns
                .iter()
                .any(|c| name == c || name.ends_with(&format!(".{c}"))),
        }
    }

    fn constraints(&self) -> NameConstraints {
        let mut permitted_subtrees: Vec<GeneralSubtree> = self
            .dns
            .iter()
            .map(|d| GeneralSubtree::DnsName(d.clone()))
            .collect();
        permitted_subtrees.extend(
            self.ip.iter().map(|(net, len)| {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*net, *len))
            }),
        );
        NameConstraints {
            permitted_subtrees,
            excluded_subtrees: Vec::new(),
        }
    }
}

fn clean(name: &str) -> String {
    name.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn in_subnet(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("permitted", &self.inner.permitted)
            .field("not_after", &self.inner.not_after)
            .finish_non_exhaustive()
    }
}

/// The ALPN protocol the data plane speaks (see docs/protocol.md#tls-and-alpn).
const ALPN_HTTP11: &[u8] = b"http/1.1";

impl TestCa {
    /// Generates a new CA (ECDSA P-256 key, self-signed certificate) that permits the default
    /// names only: `*.test`, `localhost`, 127.0.0.0/8 and `::1`.
    pub fn new() -> Result<TestCa, EmulatorError> {
        Self::permitting(&[])
    }

    /// Generates a new CA that also permits each of `names` (a DNS name, with its subdomains,
    /// or an IP address) besides the defaults of [`TestCa::new`].
    pub fn permitting(names: &[&str]) -> Result<TestCa, EmulatorError> {
        let permitted = Permitted::new(names)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "bastion emulator test CA");
        dn.push(DnType::OrganizationName, "bastion emulator");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.name_constraints = Some(permitted.constraints());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + VALIDITY;
        let (not_before, not_after) = (params.not_before, params.not_after);
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            inner: Arc::new(CaInner {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                issuer: Issuer::new(params, key),
                permitted,
                not_before,
                not_after,
            }),
        })
    }

    /// Whether the CA's name constraints permit `name` (a DNS name or an IP address).
    pub fn permits(&self, name: &str) -> bool {
        self.inner.permitted.allows(&clean(name))
    }

    /// When the CA (and every certificate it issued) stops being valid.
    pub fn not_after(&self) -> std::time::SystemTime {
        self.inner.not_after.into()
    }

    /// The CA certificate in PEM form: what a client adds to its trusted roots.
    pub fn ca_pem(&self) -> String {
        self.inner.cert_pem.clone()
    }

    /// The CA certificate in DER form.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.inner.cert_der.clone()
    }

    /// Issues a server certificate for `names` (DNS names, or IP literals which become IP
    /// SANs). Returns `(certificate PEM, PKCS#8 private key PEM)`.
    pub fn issue(&self, names: &[String]) -> Result<(String, String), EmulatorError> {
        let (cert, key) = self.issue_raw(names)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A rustls server configuration presenting a certificate for `names` (plus the CA in the
    /// chain), ALPN `http/1.1`, using the ring provider explicitly so that no process-wide
    /// default provider is needed.
    pub fn server_config(
        &self,
        names: &[String],
    ) -> Result<Arc<rustls::ServerConfig>, EmulatorError> {
        let (cert, key) = self.issue_raw(names)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let chain = vec![cert.der().clone(), self.inner.cert_der.clone()];
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    /// A root store trusting only this CA.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, EmulatorError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.inner.cert_der.clone())?;
        Ok(roots)
    }

    /// A rustls client configuration trusting only this CA (ring provider, ALPN `http/1.1`).
    /// Handy for tests that talk to an emulator directly.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, EmulatorError> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(self.root_store()?)
        .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    fn issue_raw(&self, names: &[String]) -> Result<(rcgen::Certificate, KeyPair), EmulatorError> {
        let mut unique: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.trim().trim_start_matches('[').trim_end_matches(']');
            if !name.is_empty() && !unique.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                unique.push(name.to_owned());
            }
        }
        let names = unique;
        if let Some(outside) = names.iter().find(|n| !self.permits(n)) {
            return Err(EmulatorError::Certificate(format!(
                "the test CA does not permit {outside:?} (it permits *.test, localhost, loopback addresses and the names given to TestCa::permitting)"
            )));
        }
        let Some(first) = names.first().cloned() else {
            return Err(EmulatorError::Certificate(
                "a server certificate needs at least one name".into(),
            ));
        };
        // `CertificateParams::new` turns IP literals into IP SANs and the rest into DNS SANs.
        let mut params = CertificateParams::new(names)?;
        let mut dn = DistinguishedName::new();
        let cn = if first.parse::<IpAddr>().is_ok() {
            "bastion emulator".to_owned()
        } else {
            first
        };
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = self.inner.not_before;
        params.not_after = self.inner.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.inner.issuer)?;
        Ok((cert, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn handshake(ca: &TestCa, cert_names: &[&str], connect_name: &str) -> bool {
        let names: Vec<String> = cert_names.iter().map(|s| s.to_string()).collect();
        let server = ca.server_config(&names).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut b = [0u8; 2];
                let _ = tls.read_exact(&mut b).await;
                let _ = tls.write_all(&b).await;
                let _ = tls.shutdown().await;
            }
        });
        let connector = tokio_rustls::TlsConnector::from(ca.client_config().unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(connect_name.to_owned()).unwrap();
        let ok = match connector.connect(name, tcp).await {
            Ok(mut tls) => {
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                tls.write_all(b"hi").await.unwrap();
                let mut b = [0u8; 2];
                tls.read_exact(&mut b).await.unwrap();
                &b == b"hi"
            }
            Err(_) => false,
        };
        drop(srv.await);
        ok
    }

    #[tokio::test]
    async fn dns_and_ip_names_verify_against_the_ca() {
        let ca = TestCa::new().unwrap();
        let names = ["bst-1.bastion.test", "localhost", "127.0.0.1"];
        assert!(handshake(&ca, &names, "bst-1.bastion.test").await);
        assert!(handshake(&ca, &names, "127.0.0.1").await);
        assert!(!handshake(&ca, &names, "other.bastion.test").await);
    }

    #[tokio::test]
    async fn another_ca_is_not_trusted() {
        let ca = TestCa::new().unwrap();
        let other = TestCa::new().unwrap();
        let server = ca.server_config(&["localhost".into()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        });
        let connector = tokio_rustls::TlsConnector::from(other.client_config().unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        assert!(connector.connect(name, tcp).await.is_err());
    }

    /// A leaf for `name` signed by `ca`'s key without the checks of [`TestCa::issue`], as if
    /// the key had been used for any name.
    fn forged_leaf(ca: &TestCa, name: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.is_ca = IsCa::NoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = ca.inner.not_before;
        params.not_after = ca.inner.not_after;
        let key = KeyPair::generate().unwrap();
        params
            .signed_by(&key, &ca.inner.issuer)
            .unwrap()
            .der()
            .clone()
    }

    /// Verifies `leaf` for `name` as a client trusting only `ca` would, at `now`.
    fn verify(
        ca: &TestCa,
        leaf: &CertificateDer<'static>,
        name: &str,
        now: std::time::SystemTime,
    ) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier as _;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(ca.root_store().unwrap()),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let now = rustls::pki_types::UnixTime::since_unix_epoch(
            now.duration_since(std::time::UNIX_EPOCH).unwrap(),
        );
        verifier
            .verify_server_cert(leaf, &[], &name, &[], now)
            .map(|_| ())
    }

    fn issued_leaf(ca: &TestCa, name: &str) -> CertificateDer<'static> {
        let (cert, _) = ca.issue_raw(&[name.to_owned()]).unwrap();
        cert.der().clone()
    }

    #[test]
    fn the_ca_is_constrained_to_the_emulators_names() {
        let ca =
            TestCa::permitting(&["myaks-dns-1.privatelink.eastus.azmk8s.io", "192.0.2.7"]).unwrap();
        let now = std::time::SystemTime::now();
        for name in [
            "bst-1.bastion.test",
            "management.emulator.test",
            "localhost",
            "127.0.0.1",
            "::1",
            "myaks-dns-1.privatelink.eastus.azmk8s.io",
            "192.0.2.7",
        ] {
            assert!(ca.permits(name), "{name}");
            verify(&ca, &issued_leaf(&ca, name), name, now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Even a certificate signed with the CA's key is refused for any other name: a CA file
        // left behind is never trusted for real hosts.
        for name in [
            "management.azure.com",
            "bst-1.bastion.azure.com",
            "other-dns.privatelink.eastus.azmk8s.io",
            "10.0.0.1",
            "192.0.2.8",
            "test.example.com",
        ] {
            assert!(!ca.permits(name), "{name}");
            let err = verify(&ca, &forged_leaf(&ca, name), name, now).unwrap_err();
            assert!(
                matches!(
                    err,
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName
                            | rustls::CertificateError::NotValidForNameContext { .. }
                            | rustls::CertificateError::Other(_)
                    )
                ),
                "{name}: {err:?}"
            );
            let refused = ca.issue(&[name.to_owned()]).unwrap_err().to_string();
            assert!(refused.contains("does not permit"), "{refused}");
        }
        // The defaults alone do not cover the sandbox's AKS names.
        assert!(
            !TestCa::new()
                .unwrap()
                .permits("myaks-dns-1.privatelink.eastus.azmk8s.io")
        );
        assert!(TestCa::permitting(&["com"]).is_err());
    }

    #[test]
    fn the_ca_expires_within_days() {
        let ca = TestCa::new().unwrap();
        let now = std::time::SystemTime::now();
        let until = ca.not_after().duration_since(now).unwrap();
        assert!(
            until <= VALIDITY && until > VALIDITY - Duration::from_secs(60),
            "{until:?}"
        );
        let leaf = issued_leaf(&ca, "bst-1.bastion.test");
        verify(&ca, &leaf, "bst-1.bastion.test", now).unwrap();
        let later = now + VALIDITY + Duration::from_secs(3600);
        let err = verify(&ca, &leaf, "bst-1.bastion.test", later).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. }
                )
            ),
            "{err:?}"
        );
    }

    #[test]
    fn issue_returns_pems_and_clones_share_the_ca() {
        let ca = TestCa::new().unwrap();
        let clone = ca.clone();
        assert_eq!(ca.ca_pem(), clone.ca_pem());
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let (cert, key) = clone.issue(&["arm.test".into(), "::1".into()]).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE"));
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert!(ca.issue(&[]).is_err());
    }
}
