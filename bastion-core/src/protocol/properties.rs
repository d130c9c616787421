//! Property tests of the crate-private parsers: the token response, the Developer SKU data-pod
//! reply, and the in-band HTTP detector of the WebSocket layer (issue 9, "Proof that stays in
//! the repository"). 256 cases each keep them fast.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};

use super::*;
use crate::Error;
use crate::chunked::Chunked;
use crate::websocket::InBandHttpDetector;

const REQUIRED: [&str; 3] = ["authToken", "nodeId", "websocketToken"];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A JSON value of any type except a non-empty string.
fn not_a_usable_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!("")),
        prop::collection::vec(".{0,4}", 0..3).prop_map(|v| json!(v)),
        ".{0,8}".prop_map(|s| json!({ "value": s })),
    ]
}

/// Extra keys a future service version might add (never one of the three required ones).
fn extra_keys() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-zA-Z]{1,12}", ".{0,12}"), 0..4).prop_map(|v| {
        v.into_iter()
            .filter(|(k, _)| !REQUIRED.contains(&k.as_str()))
            .collect()
    })
}

/// Whether `url` keeps a label as is: an IDNA `xx--` label (`xn--` is punycode, and most
/// random ones do not decode) is not a plain host-name label.
fn not_idna(label: &str) -> bool {
    label.get(2..4) != Some("--")
}

/// A DNS label that `url` keeps as is.
fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?".prop_filter("no IDNA label", |l| not_idna(l))
}

/// A DNS host name whose last label starts with a letter (so it is never read as an IPv4
/// address), and is no IDNA label either (an `xn--` last label is rightly rejected).
fn dns_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(dns_label(), 0..4),
        "[a-z]([a-z0-9-]{0,8}[a-z0-9])?".prop_filter("no IDNA label", |l| not_idna(l)),
    )
        .prop_map(|(mut labels, last)| {
            labels.push(last);
            labels.join(".")
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_response_parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_token_response(&body);
        let _ = minted_session(&body);
    }

    #[test]
    fn token_response_parsers_never_panic_on_json_like_text(body in r#"[{}\[\]":,a-zA-Z0-9 \\]{0,64}"#) {
        let _ = parse_token_response(body.as_bytes());
        let _ = minted_session(body.as_bytes());
    }

    #[test]
    fn valid_token_responses_round_trip(
        auth in ".{1,40}",
        node in ".{1,40}",
        ws in ".{1,40}",
        extra in extra_keys(),
    ) {
        let mut object = serde_json::Map::new();
        for (k, v) in extra {
            object.insert(k, Value::String(v));
        }
        object.insert("authToken".into(), json!(auth));
        object.insert("nodeId".into(), json!(node));
        object.insert("websocketToken".into(), json!(ws));
        let body = serde_json::to_vec(&Value::Object(object)).unwrap();
        let parsed = parse_token_response(&body).unwrap();
        prop_assert_eq!(parsed.auth_token.expose(), auth.as_str());
        prop_assert_eq!(parsed.node_id.as_str(), node.as_str());
        prop_assert_eq!(parsed.websocket_token.expose(), ws.as_str());
        let (session, node_id) = minted_session(&body).unwrap();
        prop_assert_eq!(session.expose(), auth.as_str());
        prop_assert_eq!(node_id, node);
    }

    #[test]
    fn a_wrong_or_missing_field_is_an_error_that_names_it(
        field in 0usize..3,
        wrong in prop::option::of(not_a_usable_string()),
        auth in ".{1,20}",
        node in ".{1,20}",
        ws in ".{1,20}",
    ) {
        let mut object = serde_json::Map::new();
        for (name, value) in REQUIRED.iter().zip([auth.clone(), node, ws]) {
            object.insert((*name).into(), json!(value));
        }
        match wrong {
            Some(v) => object.insert(REQUIRED[field].into(), v),
            None => object.remove(REQUIRED[field]),
        };
        let body = serde_json::to_vec(&Value::Object(object)).unwrap();
        let err = parse_token_response(&body).unwrap_err();
        prop_assert!(err.to_string().contains(&format!("`{}`", REQUIRED[field])), "{}", err);
        // The session stays deletable whenever its authToken could be read.
        let minted = minted_session(&body);
        if field == 0 {
            prop_assert!(minted.is_none());
        } else {
            let (session, _) = minted.unwrap();
            prop_assert_eq!(session.expose(), auth.as_str());
        }
    }

    #[test]
    fn json_that_is_not_an_object_is_an_error(value in not_a_usable_string().prop_filter("not an object", |v| !v.is_object())) {
        let body = serde_json::to_vec(&value).unwrap();
        prop_assert!(parse_token_response(&body).is_err());
        prop_assert!(minted_session(&body).is_none());
    }

    #[test]
    fn data_pod_reply_never_panics_and_accepts_only_host_names(body in prop::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(endpoint) = parse_connection_reply(&body) {
            prop_assert!(is_dns_name(endpoint.host()), "{:?}", endpoint);
            prop_assert!(endpoint.port() != 0);
        }
    }

    #[test]
    fn data_pod_reply_with_a_host_name_parses(
        name in dns_name(),
        port in prop::option::of(1u16..),
        lead in "[ \t\r\n]{0,3}",
        trail in "[ \t\r\n]{0,3}",
    ) {
        let host = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        };
        let endpoint = parse_connection_reply(format!("{lead}{host}{trail}").as_bytes()).unwrap();
        prop_assert_eq!(endpoint.host(), name.as_str());
        prop_assert_eq!(endpoint.port(), port.unwrap_or(443));
    }

    #[test]
    fn data_pod_reply_that_is_json_or_has_bad_characters_is_an_error(
        name in dns_name(),
        bad in "[ {}\"/@#?%!*]",
        at in any::<prop::sample::Index>(),
    ) {
        let as_json = json!({ "host": name }).to_string();
        prop_assert!(parse_connection_reply(as_json.as_bytes()).is_err());
        let i = at.index(name.len() + 1);
        let mut text = name.clone();
        text.insert_str(i, &bad);
        if bad != " " || (i != 0 && i != name.len()) {
            prop_assert!(parse_connection_reply(text.as_bytes()).is_err(), "{:?}", text);
        }
    }
}

/// Reads `data`, delivered in `chunks`, through the detector with read buffers of `reads`
/// sizes: what came through before EOF or the first error, and that error.
fn detect(data: &[u8], chunks: &[usize], reads: &[usize]) -> (Vec<u8>, Option<Error>) {
    let mut detector = InBandHttpDetector::new(Chunked::new(data, chunks.to_vec()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    // Every chunk is at least one byte, so this many polls always reach EOF.
    for turn in 0..4 * (data.len() + 8) * 2 {
        let mut storage = vec![0u8; reads[turn % reads.len()]];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut detector).poll_read(&mut cx, &mut buf) {
            Poll::Pending => continue,
            Poll::Ready(Err(e)) => return (out, Some(Error::from_io(e))),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return (out, None),
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
        }
    }
    panic!("the detector did not reach EOF");
}

const HTTP_PREFIX: &[u8] = b"HTTP/";

/// Byte streams that do not start with `HTTP/`: half of them share a proper prefix of it, so the
/// sniffing state is crossed.
fn not_http() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048)
            .prop_filter("not HTTP/", |v| !v.starts_with(HTTP_PREFIX)),
        (
            0..HTTP_PREFIX.len(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..1500),
            any::<bool>(),
        )
            .prop_filter_map("differs from HTTP/", |(k, b, rest, stop)| {
                let mut v = HTTP_PREFIX[..k].to_vec();
                if stop {
                    // A proper prefix of `HTTP/`, then EOF.
                    return Some(v);
                }
                (b != HTTP_PREFIX[k]).then(|| {
                    v.push(b);
                    v.extend(rest);
                    v
                })
            }),
    ]
}

fn sizes(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max, 1..16)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn streams_not_starting_with_http_pass_through_unchanged(
        data in not_http(),
        chunks in sizes(700),
        reads in sizes(900),
    ) {
        let (out, err) = detect(&data, &chunks, &reads);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(out, data);
    }

    #[test]
    fn an_in_band_status_line_is_an_error_in_any_chunking(
        status in 100u16..=599,
        reason in "[ -~]{0,60}",
        crlf in any::<bool>(),
        rest in prop::collection::vec(any::<u8>(), 0..512),
        chunks in sizes(64),
        reads in sizes(900),
    ) {
        let mut data = format!("HTTP/1.1 {status} {reason}").into_bytes();
        data.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        data.extend(rest);
        let (out, err) = detect(&data, &chunks, &reads);
        prop_assert!(out.is_empty(), "{} bytes passed on", out.len());
        match err {
            Some(Error::InBandHttp { status: got, status_line }) => {
                prop_assert_eq!(got, status);
                prop_assert!(status_line.starts_with(&format!("HTTP/1.1 {status}")), "{:?}", status_line);
                prop_assert!(!status_line.chars().any(char::is_control), "{:?}", status_line);
            }
            other => prop_assert!(false, "expected an in-band HTTP error, got {:?}", other),
        }
    }
}
