//! `bastion emulate` prints the control API of each of its Bastion emulators (the sandbox's and
//! the VM's) with the secret it requires, so that a script (the benchmark harness) can ask
//! whether a run left any session behind: with the secret the stats answer, without it 401.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use bastion_core::{HttpsClient, HttpsConfig, ProxySetting};
use bytes::Bytes;
use common::start_emulate_with;

fn export<'a>(printed: &'a [String], name: &str) -> &'a str {
    printed
        .iter()
        .find_map(|l| l.strip_prefix(&format!("export {name}=")))
        .map(|v| v.trim_matches('\''))
        .unwrap_or_else(|| panic!("no {name} in {printed:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulate_prints_each_control_api_and_its_secret() {
    let (mut emulate, printed) = start_emulate_with(&[]).await;

    // "# Control API: URL with header X-Emulator-Secret: SECRET"
    let control: Vec<(String, String)> = printed
        .iter()
        .filter_map(|l| l.strip_prefix("# Control API: "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(words[1..3], ["with", "header"], "{rest}");
            assert!(
                words[3].eq_ignore_ascii_case("X-Emulator-Secret:"),
                "{rest}"
            );
            (words[0].to_owned(), words[4].to_owned())
        })
        .collect();
    assert_eq!(control.len(), 2, "the sandbox's and the VM's: {printed:#?}");
    assert_ne!(control[0].0, control[1].0);
    assert_ne!(
        control[0].1, control[1].1,
        "each emulator has its own secret"
    );

    let ca = std::fs::read(export(&printed, "BASTION_CA_FILE")).expect("read the CA file");
    let resolve: Vec<(String, IpAddr)> = export(&printed, "BASTION_RESOLVE")
        .split(',')
        .map(|pair| {
            let (host, ip) = pair.split_once('=').expect("host=ip");
            (host.to_owned(), ip.parse().expect("an IP address"))
        })
        .collect();
    let client = HttpsClient::new(HttpsConfig {
        extra_root_ca_pem: Some(ca),
        resolve,
        proxy: ProxySetting::Direct,
        ..HttpsConfig::default()
    })
    .expect("client");
    for (url, secret) in &control {
        assert!(
            url.starts_with("https://") && url.ends_with("/_emulator/stats"),
            "{url}"
        );
        let with_secret = http::Request::get(url.as_str())
            .header("X-Emulator-Secret", secret.as_str())
            .body(Bytes::new())
            .unwrap();
        let resp = client.send(with_secret).await.expect("stats");
        assert_eq!(resp.status(), 200, "{url}");
        let stats: serde_json::Value = serde_json::from_slice(resp.body()).expect("JSON");
        assert_eq!(stats["live_sessions"], 0, "{stats}");
        assert_eq!(stats["live_websockets"], 0, "{stats}");

        let without = http::Request::get(url.as_str()).body(Bytes::new()).unwrap();
        let resp = client
            .send(without)
            .await
            .expect("stats without the secret");
        assert_eq!(resp.status(), 401, "{url}");
    }

    emulate.signal(rustix::process::Signal::INT);
    let status = emulate.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
}
