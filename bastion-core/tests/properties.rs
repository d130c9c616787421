//! Property tests of bastion-core's public parsers: `Endpoint::parse` and `Target::resource`
//! never panic, and what they accept round-trips through `Display` (issue 9). The crate-private
//! token, data-pod and in-band HTTP parsers are covered in `src/protocol/properties.rs`.

use bastion_core::{Endpoint, Target, is_dns_name};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Whether `url` keeps a label as is: an IDNA `xx--` label (`xn--` is punycode, and most
/// random ones do not decode) is not a plain host-name label.
fn not_idna(label: &str) -> bool {
    label.get(2..4) != Some("--")
}

/// A DNS label that `url` keeps as is.
fn dns_label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?".prop_filter("no IDNA label", |l| not_idna(l))
}

/// A host name whose last label starts with a letter (never read as an IPv4 address). Its
/// last label is no IDNA label either: `xn--jCMO1` as the last label once failed this file's
/// `host_names_and_ports_are_accepted`, rightly rejected by the parser (it is no punycode).
fn dns_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(dns_label(), 0..4),
        "[a-zA-Z]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?".prop_filter("no IDNA label", |l| not_idna(l)),
    )
        .prop_map(|(mut labels, last)| {
            labels.push(last);
            labels.join(".")
        })
}

/// Endpoint-like text: mostly the characters an endpoint is made of, so that many parse.
fn endpoint_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r"(https://|wss://|http://)?[a-zA-Z0-9.:\[\]_@/-]{0,40}/?",
        (dns_name(), prop::option::of(any::<u16>()))
            .prop_map(|(h, p)| p.map_or(h.clone(), |p| format!("{h}:{p}"))),
        (any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(ip, p)| match ip {
            std::net::IpAddr::V4(v4) => format!("{v4}:{p}"),
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{p}"),
        }),
    ]
}

/// A segment of an ARM id: no `/`, white space, `?` or `#`.
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._()-]{1,16}"
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{type}/{name}]…`,
/// keywords in any case.
fn arm_id() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["subscriptions", "Subscriptions", "SUBSCRIPTIONS"]),
        segment(),
        prop::sample::select(vec!["resourceGroups", "resourcegroups"]),
        segment(),
        prop::sample::select(vec!["providers", "Providers"]),
        segment(),
        prop::collection::vec((segment(), segment()), 1..3),
    )
        .prop_map(|(s, sub, g, rg, p, ns, pairs)| {
            let mut id = format!("/{s}/{sub}/{g}/{rg}/{p}/{ns}");
            for (t, n) in pairs {
                id.push_str(&format!("/{t}/{n}"));
            }
            id
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn endpoint_parse_never_panics_and_round_trips_its_display(input in endpoint_like()) {
        if let Ok(endpoint) = Endpoint::parse(&input) {
            let shown = endpoint.to_string();
            prop_assert_eq!(Endpoint::parse(&shown), Ok(endpoint.clone()), "{:?} -> {:?}", input, shown);
            prop_assert_eq!(&shown, &endpoint.authority());
            prop_assert!(endpoint.port() != 0);
            // What is dialled and verified is a host name or an IP literal, nothing else.
            prop_assert!(
                is_dns_name(endpoint.server_name())
                    || endpoint.server_name().parse::<std::net::IpAddr>().is_ok(),
                "{:?}", endpoint
            );
            prop_assert_eq!(Endpoint::parse(endpoint.https_url().as_str()), Ok(endpoint.clone()));
        }
    }

    #[test]
    fn host_names_and_ports_are_accepted(
        host in dns_name(),
        port in prop::option::of(1u16..),
        scheme in prop::sample::select(vec!["", "https://", "wss://"]),
        slash in any::<bool>(),
    ) {
        let authority = port.map_or(host.clone(), |p| format!("{host}:{p}"));
        let input = format!("{scheme}{authority}{}", if slash { "/" } else { "" });
        let endpoint = Endpoint::parse(&input).unwrap();
        prop_assert_eq!(endpoint.host(), host.to_ascii_lowercase());
        prop_assert_eq!(endpoint.port(), port.unwrap_or(443));
        let expected = match port {
            Some(p) if p != 443 => format!("{}:{p}", host.to_ascii_lowercase()),
            _ => host.to_ascii_lowercase(),
        };
        prop_assert_eq!(endpoint.to_string(), expected);
    }

    #[test]
    fn target_resource_never_panics_and_round_trips_its_display(
        id in prop_oneof![any::<String>(), arm_id(), arm_id().prop_map(|s| format!("{s}/")), r"[/a-zA-Z ]{0,60}"],
        port in any::<u16>(),
    ) {
        if let Ok(target) = Target::resource(id.clone(), port) {
            prop_assert!(port != 0);
            prop_assert_eq!(target.port(), port);
            prop_assert_eq!(target.ip(), None);
            prop_assert_eq!(target.resource_id(), id.strip_suffix('/').unwrap_or(&id));
            let shown = target.to_string();
            let (shown_id, shown_port) = shown.rsplit_once(" port ").unwrap();
            let again = Target::resource(shown_id, shown_port.parse().unwrap()).unwrap();
            prop_assert_eq!(again, target);
        }
    }

    #[test]
    fn arm_ids_are_accepted_as_given(id in arm_id(), port in 1u16..) {
        let target = Target::resource(id.clone(), port).unwrap();
        prop_assert_eq!(target.resource_id(), id.as_str());
        prop_assert_eq!(target.to_string(), format!("{id} port {port}"));
    }

    #[test]
    fn broken_arm_ids_are_rejected(
        id in arm_id(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![" ", "\t", "\n", "//"]),
    ) {
        let i = at.index(id.len() - 1) + 1;
        let mut broken = id.clone();
        broken.insert_str(i, bad);
        // White space, or an empty segment, anywhere after the leading `/`.
        prop_assert!(Target::resource(broken.clone(), 22).is_err(), "{:?}", broken);
        prop_assert!(Target::resource(id, 0).is_err());
    }
}
