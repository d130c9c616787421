//! bastion-core's integration tests against the emulators, one module a file, built as one test
//! binary (docs/architecture.md#tests-examples-benchmarks).

mod common;

mod backpressure;
mod client_reset;
mod concurrency;
mod delete_retries;
mod developer_and_ip_connect;
mod faults;
mod https_proxy;
mod no_secrets_in_logs;
mod prewarm;
mod properties;
mod replay;
mod shutdown;
mod silent_bastion;
mod throughput;
mod token_cache;

/// Every test file is built: one missing from the list above would never run.
#[test]
fn every_test_file_is_declared_above() {
    bastion_emulator::assert_test_files_declared(env!("CARGO_MANIFEST_DIR"));
}
