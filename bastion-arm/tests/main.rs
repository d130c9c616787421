//! bastion-arm's integration tests against the emulators, one module a file, built as one test
//! binary (docs/architecture.md#tests-examples-benchmarks).

mod common;

mod arm_authorization_failed;
mod arm_malformed_json;
mod arm_not_found;
mod arm_paging;
mod arm_server_errors;
mod arm_throttling_retry;
mod arm_token_refreshed_after_401;
mod cluster_credentials;
mod e2e_kubectl_through_tunnel;
mod emulator_auth;
mod kube_aad_stand_in;
mod kube_stand_in;
mod kubectl_against_stand_in;
mod permissions_api;
mod properties;
mod sandbox_layout;

/// Every test file is built: one missing from the list above would never run.
#[test]
fn every_test_file_is_declared_above() {
    bastion_emulator::assert_test_files_declared(env!("CARGO_MANIFEST_DIR"));
}
