//! The emulator's error type.

use std::io;

/// Errors raised while building or starting the emulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// Generating or signing a test certificate failed.
    #[error("test certificate generation failed: {0}")]
    Certificate(String),

    /// Building the rustls configuration failed.
    #[error("TLS configuration failed: {0}")]
    Tls(String),

    /// The emulator configuration is invalid.
    #[error("invalid emulator configuration: {0}")]
    Config(String),

    /// Binding or accepting on the listening socket failed.
    #[error("emulator I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<rcgen::Error> for EmulatorError {
    fn from(err: rcgen::Error) -> Self {
        EmulatorError::Certificate(err.to_string())
    }
}

impl From<rustls::Error> for EmulatorError {
    fn from(err: rustls::Error) -> Self {
        EmulatorError::Tls(err.to_string())
    }
}
