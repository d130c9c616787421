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
