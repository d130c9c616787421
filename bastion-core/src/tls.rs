//! One TLS trust configuration for every connection to the Bastion (and ARM): the webpki roots
//! plus an optional extra CA bundle. There is deliberately no switch that disables verification.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

pub use crate::read_ahead::ReadAhead;
use crate::{Error, Result};

/// The rustls crypto provider used everywhere in the workspace (ring).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM bundle into certificates; an empty bundle or one without certificates is an error.
pub fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    // Sections other than certificates (a private key, say) are skipped.
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("the CA file is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(
            "the CA file contains no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// A client configuration that trusts the webpki roots plus `extra_roots_pem`, speaks TLS 1.2+
/// and offers ALPN `http/1.1` only.
pub fn client_config(extra_roots_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots_pem {
        for cert in parse_pem_certs(pem)? {
            roots.add(cert).map_err(|e| {
                Error::Config(format!("a certificate in the CA file is unusable: {e}"))
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        bastion_emulator::TestCa::new().unwrap().ca_pem()
    }

    #[test]
    fn a_bundle_yields_its_certificates_and_skips_other_sections() {
        let (a, b) = (ca_pem(), ca_pem());
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let bundle = format!("# a comment line\n{a}{key}\n{b}");
        let certs = parse_pem_certs(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_ne!(certs[0], certs[1]);
        assert!(client_config(Some(bundle.as_bytes())).is_ok());
    }

    #[test]
    fn empty_or_broken_bundles_are_errors() {
        let err = parse_pem_certs(b"").unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = parse_pem_certs(b"not pem at all\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let broken = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let err = parse_pem_certs(broken.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("not valid PEM"), "{err}");
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(parse_pem_certs(unterminated.as_bytes()).is_err());
    }

    #[test]
    fn a_garbled_certificate_is_refused_by_the_store() {
        let garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = client_config(Some(garbled.as_bytes()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unusable"), "{err}");
    }
}
