//! The `bastion` binary's jemalloc carries the options the workspace's `.cargo/config.toml`
//! compiles in (small slabs and thread caches, so a burst of connections gives its memory
//! back: docs/architecture.md#memory). Losing that file, or a tikv-jemalloc-sys that stops
//! reading `JEMALLOC_SYS_WITH_MALLOC_CONF`, would silently bring back the old memory profile;
//! this test fails instead.

#![cfg(not(target_env = "msvc"))]

use crate::common;

use common::run;

/// The value `.cargo/config.toml` sets for `JEMALLOC_SYS_WITH_MALLOC_CONF`.
fn configured_options() -> &'static str {
    let config = include_str!("../../.cargo/config.toml");
    let line = config
        .lines()
        .find_map(|l| l.strip_prefix("JEMALLOC_SYS_WITH_MALLOC_CONF = \""))
        .expect("JEMALLOC_SYS_WITH_MALLOC_CONF in .cargo/config.toml");
    line.strip_suffix('"').expect("a one-line string value")
}

#[tokio::test]
async fn jemalloc_carries_the_workspace_options() {
    let options = configured_options();
    assert!(options.contains("slab_sizes:") && options.contains("tcache_nslots_small_max:"));
    // `stats_print` makes jemalloc print its statistics, build-time options first, to stderr
    // when the process exits.
    let env = [(
        "_RJEM_MALLOC_CONF".to_owned(),
        "stats_print:true".to_owned(),
    )];
    let out = run(&["--version"], &env).await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let built = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("config.malloc_conf: "))
        .unwrap_or_else(|| panic!("no config.malloc_conf in jemalloc's statistics:\n{stderr}"));
    assert_eq!(built, format!("\"background_thread:true,{options}\""));
}
