//! Property tests (issue 9): `ResourceId::parse` never panics and round-trips; kubeconfig parse,
//! the tunnel rewrite and its restore give back the original document.

use bastion_arm::{ClusterSelector, Kubeconfig, ResourceId, ResourceScope};
use proptest::prelude::*;
use yaml_serde::{Mapping, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A segment of an ARM id: no `/`, white space, `?` or `#`.
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._()-]{1,16}"
}

fn type_segment() -> impl Strategy<Value = String> {
    segment().prop_filter("not a nested providers", |s| {
        !s.eq_ignore_ascii_case("providers")
    })
}

/// `(text, subscription, group, name)` of a resource id, keywords in any case.
fn resource_id() -> impl Strategy<Value = (String, String, String, String)> {
    (
        prop::sample::select(vec!["subscriptions", "Subscriptions", "SUBSCRIPTIONS"]),
        segment(),
        prop::sample::select(vec!["resourceGroups", "resourcegroups", "RESOURCEGROUPS"]),
        segment(),
        prop::sample::select(vec!["providers", "Providers"]),
        segment(),
        prop::collection::vec((type_segment(), segment()), 1..3),
    )
        .prop_map(|(s, sub, g, rg, p, ns, pairs)| {
            let mut id = format!("/{s}/{sub}/{g}/{rg}/{p}/{ns}");
            for (t, n) in &pairs {
                id.push_str(&format!("/{t}/{n}"));
            }
            let name = pairs.last().map(|(_, n)| n.clone()).unwrap_or_default();
            (id, sub, rg, name)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn resource_id_parse_never_panics_and_round_trips(
        input in prop_oneof![
            any::<String>(),
            r"[/a-zA-Z0-9 ?#]{0,80}",
            resource_id().prop_map(|r| r.0),
            resource_id().prop_map(|r| format!("{}/", r.0)),
        ],
    ) {
        if let Ok(id) = ResourceId::parse(&input) {
            let shown = id.to_string();
            let again = ResourceId::parse(&shown).unwrap();
            prop_assert_eq!(again.as_str(), id.as_str());
            prop_assert_eq!(&again, &id);
            prop_assert_eq!(again.scope(), id.scope());
            let json = serde_json::to_string(&id).unwrap();
            let back: ResourceId = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.as_str(), id.as_str());
            prop_assert!(!shown.ends_with('/') && !shown.contains("//"), "{:?}", shown);
        }
    }

    #[test]
    fn resource_ids_parse_to_their_parts(
        (text, sub, rg, name) in resource_id(),
        trailing_slash in any::<bool>(),
    ) {
        let input = if trailing_slash { format!("{text}/") } else { text.clone() };
        let id = ResourceId::parse(&input).unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(id.scope(), ResourceScope::Resource);
        prop_assert_eq!(id.subscription(), sub.as_str());
        prop_assert_eq!(id.resource_group(), Some(rg.as_str()));
        prop_assert_eq!(id.name(), name.as_str());
        // Equality ignores case, the text keeps it.
        let upper = ResourceId::parse(&text.to_uppercase()).unwrap();
        prop_assert_eq!(&upper, &id);
        prop_assert_eq!(upper.as_str(), text.to_uppercase());
    }

    #[test]
    fn ids_with_white_space_a_query_or_empty_segments_are_rejected(
        (text, ..) in resource_id(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![" ", "\t", "?", "#", "///"]),
    ) {
        let i = at.index(text.len() - 1) + 1;
        let mut broken = text.clone();
        broken.insert_str(i, bad);
        prop_assert!(ResourceId::parse(&broken).is_err(), "{:?}", broken);
    }
}

/// One generated cluster entry.
#[derive(Debug, Clone)]
struct Cluster {
    name: String,
    server: String,
    /// The host `tls-server-name` defaults to: the server's, without brackets.
    host: String,
    tls_server_name: Option<String>,
    ca_data: Option<String>,
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){1,3}"
            .prop_filter("no IDNA label", |h| h.get(2..4) != Some("--")),
        1 => any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        1 => any::<std::net::Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ]
}

fn cluster(index: usize) -> impl Strategy<Value = Cluster> {
    (
        "[a-zA-Z0-9_.-]{1,12}",
        host(),
        prop::option::of(1u16..),
        prop::option::of("/[a-z]{0,8}"),
        prop::option::of("[a-z0-9.-]{0,20}"),
        prop::option::of("[A-Za-z0-9+/]{4,40}={0,2}"),
    )
        .prop_map(move |(name, host, port, path, tls, ca)| {
            let mut server = format!("https://{host}");
            if let Some(p) = port {
                server.push_str(&format!(":{p}"));
            }
            if let Some(path) = path {
                server.push_str(&path);
            }
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            // What `url` makes of the host (IPv6 literals compressed, names lowercased).
            let url = url::Url::parse(&server).unwrap();
            let parsed = url.host_str().unwrap_or(bare);
            Cluster {
                name: format!("c{index}-{name}"),
                server,
                host: parsed
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                tls_server_name: tls,
                ca_data: ca,
            }
        })
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// A kubeconfig with the generated clusters, one context and user per cluster, and a
/// `current-context` naming one of them.
fn kubeconfig_yaml(clusters: &[Cluster], current: usize, token: &str) -> String {
    let mut cluster_seq = Vec::new();
    let mut context_seq = Vec::new();
    let mut user_seq = Vec::new();
    for c in clusters {
        let mut body = Mapping::new();
        if let Some(ca) = &c.ca_data {
            body.insert(s("certificate-authority-data"), s(ca));
        }
        body.insert(s("server"), s(&c.server));
        if let Some(t) = &c.tls_server_name {
            body.insert(s("tls-server-name"), s(t));
        }
        let mut entry = Mapping::new();
        entry.insert(s("cluster"), Value::Mapping(body));
        entry.insert(s("name"), s(&c.name));
        cluster_seq.push(Value::Mapping(entry));

        let mut ctx = Mapping::new();
        ctx.insert(s("cluster"), s(&c.name));
        ctx.insert(s("user"), s(&format!("user-{}", c.name)));
        let mut entry = Mapping::new();
        entry.insert(s("context"), Value::Mapping(ctx));
        entry.insert(s("name"), s(&format!("ctx-{}", c.name)));
        context_seq.push(Value::Mapping(entry));

        let mut user = Mapping::new();
        user.insert(s("token"), s(token));
        let mut entry = Mapping::new();
        entry.insert(s("name"), s(&format!("user-{}", c.name)));
        entry.insert(s("user"), Value::Mapping(user));
        user_seq.push(Value::Mapping(entry));
    }
    let mut doc = Mapping::new();
    doc.insert(s("apiVersion"), s("v1"));
    doc.insert(s("clusters"), Value::Sequence(cluster_seq));
    doc.insert(s("contexts"), Value::Sequence(context_seq));
    doc.insert(
        s("current-context"),
        s(&format!("ctx-{}", clusters[current].name)),
    );
    doc.insert(s("kind"), s("Config"));
    doc.insert(s("preferences"), Value::Mapping(Mapping::new()));
    doc.insert(s("users"), Value::Sequence(user_seq));
    yaml_serde::to_string(&Value::Mapping(doc)).unwrap()
}

fn clusters() -> impl Strategy<Value = Vec<Cluster>> {
    (1usize..4).prop_flat_map(|n| (0..n).map(cluster).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kubeconfig_parse_never_panics(
        text in prop_oneof![any::<String>(), r"[a-z:\- \n{}\[\]'|>&*!%@#,]{0,120}"],
    ) {
        if let Ok(k) = Kubeconfig::parse(&text) {
            // Whatever parses serialises and parses back to the same document.
            let yaml = k.to_yaml().unwrap();
            prop_assert_eq!(Kubeconfig::parse(&yaml).unwrap(), k);
        }
    }

    #[test]
    fn restore_undoes_the_tunnel_rewrite(
        clusters in clusters(),
        pick in any::<prop::sample::Index>(),
        by_name in any::<bool>(),
        port in 1u16..,
        token in "[A-Za-z0-9._-]{1,40}",
    ) {
        let current = pick.index(clusters.len());
        let text = kubeconfig_yaml(&clusters, current, &token);
        let original = Kubeconfig::parse(&text).unwrap();
        let target = &clusters[current];
        let selector = if by_name {
            ClusterSelector::Named(&target.name)
        } else {
            ClusterSelector::CurrentContext
        };

        let mut rewritten = original.clone();
        let record = rewritten.point_at_tunnel(selector, port).unwrap();
        let tunnel = format!("https://localhost:{port}/");
        prop_assert_eq!(&record.cluster, &target.name);
        prop_assert_eq!(rewritten.server(&target.name), Some(tunnel.as_str()));
        let expected_name = target
            .tls_server_name
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| target.host.clone());
        prop_assert_eq!(rewritten.tls_server_name(&target.name), Some(expected_name.as_str()));
        for other in clusters.iter().filter(|c| c.name != target.name) {
            prop_assert_eq!(rewritten.server(&other.name), Some(other.server.as_str()));
            prop_assert_eq!(rewritten.tls_server_name(&other.name), other.tls_server_name.as_deref());
        }
        // The credentials are carried over untouched.
        prop_assert!(rewritten.to_yaml().unwrap().contains(&token));

        // Restored on the document as re-read from disk, the original comes back whole.
        let mut reread = Kubeconfig::parse(&rewritten.to_yaml().unwrap()).unwrap();
        prop_assert!(reread.restore(&record));
        prop_assert_eq!(reread.server(&target.name), Some(target.server.as_str()));
        prop_assert_eq!(reread.tls_server_name(&target.name), target.tls_server_name.as_deref());
        prop_assert_eq!(&reread, &original);
        prop_assert_eq!(reread.to_yaml().unwrap(), original.to_yaml().unwrap());

        // A second restore, or one after the user moved the server, changes nothing.
        prop_assert!(!reread.restore(&record));
        prop_assert_eq!(&reread, &original);
    }

    #[test]
    fn restore_leaves_a_server_the_user_changed(
        clusters in clusters(),
        port in 1u16..,
        other_port in 1u16..,
    ) {
        prop_assume!(port != other_port);
        let original = Kubeconfig::parse(&kubeconfig_yaml(&clusters, 0, "t")).unwrap();
        let mut rewritten = original.clone();
        let record = rewritten.point_at_tunnel(ClusterSelector::CurrentContext, port).unwrap();
        let mut moved = rewritten.clone();
        let other = moved.point_at_tunnel(ClusterSelector::CurrentContext, other_port).unwrap();
        prop_assert_eq!(other.original_server, record.tunnel_server.clone());
        let before = moved.clone();
        prop_assert!(!moved.restore(&record));
        prop_assert_eq!(moved, before);
    }
}
