//! A throw-away certificate authority for the emulators (this one and the ARM emulator).
//!
//! Every server certificate is issued by one generated CA, so a client only has to trust
//! [`TestCa::ca_pem`] — exactly how a user would configure a custom CA bundle (see
//! docs/protocol.md#tls-and-alpn).

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::EmulatorError;

/// A generated test CA. Cheap to clone: clones share the same key and certificate.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<CaInner>,
}

struct CaInner {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// The ALPN protocol the data plane speaks (see docs/protocol.md#tls-and-alpn).
const ALPN_HTTP11: &[u8] = b"http/1.1";

impl TestCa {
    /// Generates a new CA (ECDSA P-256 key, self-signed certificate).
    pub fn new() -> Result<TestCa, EmulatorError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "bastion emulator test CA");
        dn.push(DnType::OrganizationName, "bastion emulator");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            inner: Arc::new(CaInner {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                issuer: Issuer::new(params, key),
            }),
        })
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
