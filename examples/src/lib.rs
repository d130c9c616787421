//! Examples live in the package root as [[example]] targets; this library holds the set-up they
//! share.

/// The examples' error type.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Logs to stderr, at `default_filter` (`"warn"`, `"info"`, …) unless `RUST_LOG` says otherwise.
pub fn init_tracing(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
