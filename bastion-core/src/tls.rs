//! One TLS trust configuration for every connection to the Bastion (and ARM): the webpki roots
//! plus an optional extra CA bundle. There is deliberately no switch that disables verification.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use crate::{Error, Result};

/// The rustls crypto provider used everywhere in the workspace (ring).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM bundle into certificates; an empty bundle or one without certificates is an error.
pub fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut reader = pem;
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader)
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
