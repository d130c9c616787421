//! A body that is not the expected JSON is a typed error with an excerpt; error bodies are
//! understood wrapped or bare.

use crate::common;

use bastion_emulator::Fault;
use common::*;

#[tokio::test]
async fn malformed_json_is_its_own_error_with_an_excerpt() {
    let emu = start().await;
    emu.inject(Fault::malformed_json("/bastionhosts"));
    let arm = client(&emu, ALICE);
    let err = arm.list_bastions_in_group(SUB, "hub-rg").await.unwrap_err();
    assert!(err.is_malformed(), "{err}");
    assert!(!err.is_not_found());
    let text = err.to_string();
    assert!(text.contains("malformed"), "{text}");
    assert!(text.contains("{\\\"value\\\""), "{text}");
}

#[tokio::test]
async fn bare_error_objects_are_parsed_like_wrapped_ones() {
    let emu = start().await;
    emu.set_bare_errors(true);
    let arm = client(&emu, ALICE);
    let err = arm
        .get_bastion(&id(&bastion_id("missing")))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some("ResourceNotFound"));
    assert!(err.message().unwrap().contains("was not found"));

    emu.inject(Fault::error(
        "/bastionhosts/bastion-1",
        409,
        "Conflict",
        "Another operation is in progress.",
    ));
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("Conflict"));
    assert_eq!(err.message(), Some("Another operation is in progress."));
}
