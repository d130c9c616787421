//! Fuzz target: a kubeconfig that parses serialises and parses back to the same document; the
//! tunnel rewrite (`point_at_tunnel`) of any of its clusters, written out and read back, is
//! undone by `restore` to the original document; a second restore changes nothing.
#![no_main]

use bastion_arm::{ClusterSelector, Kubeconfig};

const PORT: u16 = 43421;

fn round_trip(original: &Kubeconfig, selector: ClusterSelector<'_>) {
    let mut rewritten = original.clone();
    let Ok(record) = rewritten.point_at_tunnel(selector, PORT) else {
        return;
    };
    assert_eq!(
        rewritten.server(&record.cluster),
        Some(record.tunnel_server.as_str())
    );
    let yaml = rewritten
        .to_yaml()
        .expect("a rewritten kubeconfig serialises");
    let mut reread = Kubeconfig::parse(&yaml).expect("a rewritten kubeconfig parses");
    assert_eq!(reread, rewritten);
    assert!(reread.restore(&record), "restore found nothing to undo");
    assert!(
        reread == *original,
        "restore did not give back the original"
    );
    if record.original_server != record.tunnel_server {
        assert!(
            !reread.restore(&record),
            "a second restore changed something"
        );
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(original) = Kubeconfig::parse(text) else {
        return;
    };
    let yaml = original.to_yaml().expect("a parsed kubeconfig serialises");
    let again = Kubeconfig::parse(&yaml).expect("its own output parses");
    assert!(
        again == original,
        "the YAML round trip changed the document"
    );
    let _ = (original.current_context(), original.context_names());
    round_trip(&original, ClusterSelector::CurrentContext);
    for name in original.cluster_names() {
        round_trip(&original, ClusterSelector::Named(name));
    }
});
