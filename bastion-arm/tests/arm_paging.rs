//! Lists follow the absolute nextLink verbatim until it is absent, and a nextLink loop is cut
//! off by the page limit.

use crate::common;

use bastion_emulator::ArmEmulatorConfig;
use common::*;

#[tokio::test]
async fn list_follows_next_link_across_pages() {
    let emu = start_with(
        fixtures(),
        ArmEmulatorConfig {
            page_size: Some(2),
            ..ArmEmulatorConfig::default()
        },
    )
    .await;
    let arm = client(&emu, ALICE);
    let bastions = arm.list_bastions_in_group(SUB, "hub-rg").await.unwrap();
    let names: Vec<&str> = bastions.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bastion-1",
            "bastion-2",
            "bastion-3",
            "bastion-4",
            "bastion-5"
        ]
    );
    let log = emu.requests();
    assert_eq!(log.len(), 3);
    assert!(!log[0].query.contains("skiptoken"));
    assert!(log[1].query.contains("%24skiptoken=") || log[1].query.contains("$skiptoken="));
    assert!(
        log.iter()
            .all(|r| r.api_version.as_deref() == Some("2024-05-01"))
    );

    // Subscription-wide lists page the same way.
    emu.clear_requests();
    let all = arm.list_bastions_in_subscription(SUB).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(emu.requests().len(), 3);
}

#[tokio::test]
async fn page_limit_stops_runaway_lists() {
    let emu = start().await;
    emu.set_page_size(Some(1));
    let mut config = emu.client_config();
    config.max_pages = 3;
    let arm = client_with(&emu, emu.token_for(ALICE).unwrap(), config);
    let err = arm.list_bastions_in_group(SUB, "hub-rg").await.unwrap_err();
    assert!(err.to_string().contains("3 pages"), "{err}");
    assert_eq!(emu.requests().len(), 3);
}
