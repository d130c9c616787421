//! Fuzz target: `ResourceId::parse` never panics, and what it accepts round-trips through its
//! text and JSON forms, keeps its scope, and has no empty segment.
#![no_main]

use bastion_arm::ResourceId;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = ResourceId::parse(text) else {
        return;
    };
    let shown = id.to_string();
    let again = ResourceId::parse(&shown).expect("a parsed id's text parses");
    assert_eq!(again.as_str(), id.as_str());
    assert_eq!(again, id);
    assert_eq!(again.scope(), id.scope());
    assert!(!shown.ends_with('/') && !shown.contains("//"), "{shown:?}");
    assert!(!id.subscription().is_empty());
    // Equality ignores ASCII case (ARM's names are ASCII; Unicode upper-casing does not
    // always round-trip, e.g. U+03D1), the text keeps it.
    let upper = ResourceId::parse(&shown.to_ascii_uppercase()).expect("upper case parses");
    assert_eq!(upper, id);
    assert_eq!(upper.as_str(), shown.to_ascii_uppercase());
    // Derivations never panic and stay inside the id.
    if let Some(parent) = id.parent() {
        assert!(parent.contains(&id), "{parent} does not contain {id}");
    }
    if let Some(group) = id.resource_group_id() {
        assert!(group.contains(&id));
    }
    assert!(id.subscription_id().contains(&id));
    let _ = (
        id.namespace(),
        id.resource_type(),
        id.full_type(),
        id.name(),
    );
    let _ = id.vnet_of_subnet();
});
