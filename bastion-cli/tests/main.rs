//! The `bastion` binary's end-to-end tests, one module a file, built as one test binary: one
//! link instead of one a file keeps the build's time and disk in bounds
//! (docs/architecture.md#tests-examples-benchmarks).

mod aad;
mod common;

mod aks_aad_kubectl;
mod aks_admin_credentials;
mod aks_connection_options;
mod aks_credentials;
mod aks_credentials_aad;
mod aks_interrupted_during_setup;
mod aks_kubeconfig_path_restored;
mod aks_kubectl_get_pods;
mod aks_prewarm;
mod aks_probe_failure_cleans_up;
mod aks_sigterm_cleans_up;
mod aks_skip_checks;
mod aks_users_kubeconfig_untouched;
mod allocator_options;
mod bad_input;
mod check_aks_failures;
mod check_authorized_ip_ranges;
mod check_tunnel_report;
mod completions_and_help;
mod demo_finishes;
mod emulate_control_api;
mod emulate_env_file;
mod emulate_then_tunnel_curl;
mod exit_codes_end_to_end;
mod first_run_without_credentials;
mod kube_token;
mod managed_identity_token;
mod no_payload_in_logs;
mod openssh_end_to_end;
mod proxy_exits_when_the_bastion_closes;
mod proxy_half_close;
mod proxy_idle_timeout;
mod proxy_pipe;
mod proxy_restores_blocking_pipes;
mod proxy_small_write_is_not_buffered;
mod quiet_and_private;
mod rdp_client;
mod ssh_auth_type;
mod ssh_passes_exit_code;
mod token_sources;
mod tunnel_connection_limits;
mod tunnel_developer_sku;
mod tunnel_direct_endpoint;
mod tunnel_exit_after_idle;
mod tunnel_ip_connect;
mod tunnel_json_events;
mod tunnel_prewarm;
mod tunnel_second_ctrl_c;
mod tunnel_sighup;
mod tunnel_timeout;
mod tunnel_undeleted_sessions;
mod up_bad_files;
mod up_tunnels_file;

/// Every test file is built: one missing from the list above would never run.
#[test]
fn every_test_file_is_declared_above() {
    bastion_emulator::assert_test_files_declared(env!("CARGO_MANIFEST_DIR"));
}
