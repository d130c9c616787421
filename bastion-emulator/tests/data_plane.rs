//! The Bastion data-plane emulator over real TLS, driven by a minimal client (hyper client +
//! tungstenite), so that its behaviour is pinned independently of bastion-core.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

use bastion_emulator::*;
use common::{
    Client, Setup, T, arm_token, enc, form, next_close, recv, setup, setup_with, setup_with_faults,
    unused_addr,
};

#[tokio::test]
async fn json_body_is_500() {
    let s = setup().await;
    let req = Request::post("/api/tokens")
        .header(HOST, s.client.authority(&s.dns))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{\"resourceId\":\"x\"}")))
        .unwrap();
    assert_eq!(s.client.send(&s.dns, req).await.status, 500);
    assert_eq!(s.emu.stats().token_requests, 1);
    assert_eq!(s.emu.stats().tokens_issued, 0);
}

#[tokio::test]
async fn authorization_header_is_500() {
    let s = setup().await;
    let bearer = format!("Bearer {}", arm_token());
    let r = s
        .client
        .post_form(
            &s.dns,
            &form(&s.vm, 22, &arm_token()),
            &[(AUTHORIZATION.as_str(), &bearer)],
        )
        .await;
    assert_eq!(r.status, 500);
}

#[tokio::test]
async fn missing_fields_and_bad_values_are_400() {
    let s = setup().await;
    let r = s
        .client
        .post_form(&s.dns, "resourceId=x&protocol=tcptunnel", &[])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "BAD_REQUEST");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("workloadHostPort")
    );
    let r = s.client.mint(&s.dns, &s.vm, 0, &arm_token()).await;
    assert_eq!(r.status, 400);
    let bad_protocol = form(&s.vm, 22, &arm_token()).replace("tcptunnel", "ssh");
    assert_eq!(
        s.client.post_form(&s.dns, &bad_protocol, &[]).await.status,
        400
    );
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let s = setup().await;
    for token in [
        TestClaims::new("another-tenant", "o").mint(),
        TestClaims::new(TEST_TENANT, "o").expired().mint(),
        TestClaims::new(TEST_TENANT, "o")
            .audience("https://graph.microsoft.com")
            .mint(),
        "not-a-jwt".to_owned(),
    ] {
        let r = s.client.mint(&s.dns, &s.vm, 22, &token).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["type"], "INVALID_CREDENTIALS");
    }
    let ok = TestClaims::new(TEST_TENANT, "o")
        .audience("https://management.core.windows.net/")
        .mint();
    assert_eq!(s.client.mint(&s.dns, &s.vm, 22, &ok).await.status, 200);
}

#[tokio::test]
async fn tunneling_disabled_is_403_routed_by_host() {
    let disabled = BastionFixture::standard(TEST_TENANT)
        .dns_name("bst-off.bastion.test")
        .tunneling(false);
    let s = setup_with(|c| c.with_bastion(disabled)).await;
    let r = s
        .client
        .mint("bst-off.bastion.test", &s.vm, 22, &arm_token())
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "Tunneling is disabled");
    // The other Bastion on the same port still works.
    assert_eq!(s.mint().await.status, 200);
}

#[tokio::test]
async fn unknown_target_is_404() {
    let s = setup().await;
    assert_eq!(s.mint_for(&vm_resource_id("nope")).await.status, 404);
    assert_eq!(
        s.client
            .mint(&s.dns, &s.vm, 2222, &arm_token())
            .await
            .status,
        404
    );
    // Resource ids match case-insensitively.
    let upper = s.vm.to_uppercase();
    assert_eq!(s.mint_for(&upper).await.status, 200);
}

#[tokio::test]
async fn success_returns_all_six_keys() {
    let s = setup().await;
    let r = s.mint().await;
    assert_eq!(r.status, 200);
    let v = r.json();
    for key in [
        "authToken",
        "username",
        "dataSource",
        "nodeId",
        "websocketToken",
    ] {
        assert!(v[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    assert!(v["availableDataSources"].is_array());
    assert!(
        s.emu
            .nodes()
            .contains(&v["nodeId"].as_str().unwrap().to_owned())
    );
    let sessions = s.emu.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state, SessionState::Minted);
    assert_eq!(sessions[0].auth_token, v["authToken"].as_str().unwrap());
    assert_eq!(s.emu.stats().live_sessions, 1);
}

#[tokio::test]
async fn relay_echoes_then_close_and_delete() {
    let s = setup().await;
    let (auth, node, mut ws) = s.tunnel().await;
    let banner = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    let big = vec![7u8; 4096];
    ws.send(Message::Binary(banner.clone().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < banner.len() + big.len() {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => echoed.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(&echoed[..banner.len()], &banner[..]);
    assert!(s.emu.wait_until(|st| st.live_websockets == 1, T).await);
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000.into(),
        reason: "".into(),
    })))
    .await
    .unwrap();
    assert_eq!(next_close(&mut ws).await, Some(1000));
    assert!(s.emu.wait_until(|st| st.live_websockets == 0, T).await);
    let st = s.emu.stats();
    assert_eq!(st.largest_frame_up, 4096);
    assert_eq!(st.frames_up, 2);
    assert_eq!(st.bytes_up, 4096 + 21);
    assert_eq!(st.close_frames_received, 1);
    let rec = &s.emu.sessions()[0];
    assert_eq!(
        (rec.state, rec.close_code),
        (SessionState::Closed, Some(1000))
    );

    assert_eq!(s.client.delete(&s.dns, &auth, &node).await, 204);
    assert_eq!(s.client.delete(&s.dns, &auth, &node).await, 404);
    assert_eq!(s.emu.stats().deletes, 1);
    s.emu.assert_no_orphans();
}

#[tokio::test]
async fn websocket_token_is_single_use_and_node_checked() {
    let s = setup().await;
    let v = s.mint().await.json();
    let ws = v["websocketToken"].as_str().unwrap();
    let node = v["nodeId"].as_str().unwrap();
    let other = s.emu.nodes().iter().find(|n| *n != node).unwrap().clone();
    let wrong = format!("/webtunnelv2/{ws}?X-Node-Id={other}");
    assert_eq!(
        s.client.websocket(&s.dns, &wrong).await.unwrap_err().status,
        403
    );
    let missing = format!("/webtunnelv2/{ws}");
    assert_eq!(
        s.client
            .websocket(&s.dns, &missing)
            .await
            .unwrap_err()
            .status,
        403
    );
    let right = format!("/webtunnelv2/{ws}?X-Node-Id={node}");
    let mut sock = s.websocket_at(&right).await;
    assert_eq!(
        s.client.websocket(&s.dns, &right).await.unwrap_err().status,
        404
    );
    assert_eq!(
        s.client
            .websocket(&s.dns, "/webtunnelv2/unknown?X-Node-Id=x")
            .await
            .unwrap_err()
            .status,
        404
    );
    sock.close(None).await.unwrap();
}

#[tokio::test]
async fn expired_websocket_token_is_404() {
    let s = setup_with(|c| c.websocket_token_ttl(Duration::from_millis(1))).await;
    let v = s.mint().await.json();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.websocket_refused(&v).await, 404);
    assert_eq!(s.emu.sessions()[0].state, SessionState::Expired);
}

#[tokio::test]
async fn developer_data_pod_lookup_and_omni_tunnel() {
    let (echo, _task) = spawn_echo_target().await.unwrap();
    let dev = BastionFixture::developer(TEST_TENANT);
    let omni = dev.dns_name.clone();
    let vm = vm_resource_id("devvm");
    let emu = Emulator::start(EmulatorConfig::single(dev.clone()).target(vm.clone(), 22, echo))
        .await
        .unwrap();
    let client = Client::new(&emu);
    let body = serde_json::json!({
        "resourceId": vm, "bastionResourceId": dev.id, "vmPort": 22,
        "azToken": arm_token(), "connectionType": "nativeclient",
    });
    let lookup = |body: Value| {
        Request::post("/api/connection")
            .header(HOST, client.authority(&omni))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let r = client.send(&omni, lookup(body.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers[CONTENT_TYPE], "text/plain");
    let pod = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(pod, emu.data_pod_endpoint());
    let pod_host = pod.split(':').next().unwrap().to_owned();
    assert_eq!(pod_host, DEFAULT_DATA_POD_HOST);

    // vmPort as a string works too; a wrong connectionType does not.
    let mut as_string = body.clone();
    as_string["vmPort"] = Value::from("22");
    assert_eq!(client.send(&omni, lookup(as_string)).await.status, 200);
    let mut wrong = body.clone();
    wrong["connectionType"] = Value::from("ssh");
    assert_eq!(client.send(&omni, lookup(wrong)).await.status, 400);

    emu.set_faults(Faults {
        connection_whitespace: true,
        ..Faults::default()
    });
    let r = client.send(&omni, lookup(body)).await;
    assert_eq!(String::from_utf8(r.body.to_vec()).unwrap().trim(), pod);
    emu.set_faults(Faults::default());

    let v = client.mint(&pod_host, &vm, 22, &arm_token()).await.json();
    let path = format!("/omni/webtunnel/{}", v["websocketToken"].as_str().unwrap());
    let mut ws = client
        .websocket(&pod_host, &path)
        .await
        .map_err(|r| r.status)
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"ping")))
        .await
        .unwrap();
    match tokio::time::timeout(T, ws.next()).await.unwrap() {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], b"ping"),
        other => panic!("unexpected {other:?}"),
    }
    ws.close(None).await.unwrap();
    let auth = v["authToken"].as_str().unwrap();
    assert_eq!(
        client
            .delete(&pod_host, auth, v["nodeId"].as_str().unwrap())
            .await,
        204
    );
    emu.assert_no_orphans();
    emu.shutdown().await;
}

#[tokio::test]
async fn text_frame_from_client_gets_1003() {
    let s = setup().await;
    let (_, _, mut ws) = s.tunnel().await;
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_close(&mut ws).await, Some(1003));
    assert!(
        s.emu
            .wait_until(|st| st.text_frames_up == 1 && st.live_websockets == 0, T)
            .await
    );
}

#[tokio::test]
async fn strict_max_frame_gets_1009_and_records_size() {
    let s = setup_with_faults(Faults {
        max_frame_size: Some(4096),
        ..Faults::default()
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    ws.send(Message::Binary(vec![1u8; 4096].into()))
        .await
        .unwrap();
    ws.send(Message::Binary(vec![1u8; 4097].into()))
        .await
        .unwrap();
    assert_eq!(next_close(&mut ws).await, Some(1009));
    assert_eq!(s.emu.stats().largest_frame_up, 4097);
    assert_eq!(s.emu.sessions()[0].server_close_code, Some(1009));
}

#[tokio::test]
async fn quirky_101_without_upgrade_headers_or_with_wrong_accept() {
    let s = setup_with_faults(Faults {
        upgrade_without_headers: true,
        ..Faults::default()
    })
    .await;
    let (up, headers) = s.mint_then_upgrade().await;
    assert!(headers.get(UPGRADE).is_none() && headers.get(CONNECTION).is_none());
    assert!(headers.get("Sec-WebSocket-Accept").is_some());
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Client, None).await;
    ws.send(Message::Binary(Bytes::from_static(b"x")))
        .await
        .unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Binary(_)))));
    ws.close(None).await.unwrap();

    s.emu.set_faults(Faults {
        wrong_accept: true,
        ..Faults::default()
    });
    let (_, headers) = s.mint_then_upgrade().await;
    assert_eq!(headers[UPGRADE], "websocket");
    assert_eq!(headers["Sec-WebSocket-Accept"].len(), 28);
}

#[tokio::test]
async fn in_band_http_400_after_upgrade() {
    let s = setup_with_faults(Faults {
        in_band_http_after_upgrade: true,
        ..Faults::default()
    })
    .await;
    let (up, _) = s.mint_then_upgrade().await;
    let mut io = TokioIo::new(up);
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(T, io.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Apache Tomcat"));
}

#[tokio::test]
async fn in_band_http_400_after_client_bytes_counts_what_came_first() {
    let s = setup_with_faults(Faults {
        in_band_http_after_upgrade: true,
        in_band_after_client_bytes: Some(2500),
        ..Faults::default()
    })
    .await;
    let (up, _) = s.mint_then_upgrade().await;
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Client, None).await;
    // Three frames of 1000 bytes: the page comes once 2500 have arrived, that is after the
    // third (the count is of whole frames received).
    for _ in 0..3 {
        ws.send(Message::Binary(Bytes::from(vec![7u8; 1000])))
            .await
            .unwrap();
    }
    // The client's WebSocket reads the page as a broken frame.
    let end = tokio::time::timeout(T, ws.next()).await.unwrap();
    assert!(!matches!(end, Some(Ok(Message::Binary(_)))), "{end:?}");
    let sessions = s.emu.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].bytes_before_in_band, Some(3000));
    assert_eq!(sessions[0].bytes_up_before_first_down, None);
}

#[tokio::test]
async fn in_band_http_400_at_once_counts_nothing_received() {
    let s = setup_with_faults(Faults {
        in_band_http_after_upgrade: true,
        ..Faults::default()
    })
    .await;
    let (up, _) = s.mint_then_upgrade().await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(T, TokioIo::new(up).read_to_end(&mut raw))
        .await
        .unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(s.emu.sessions()[0].bytes_before_in_band, Some(0));
}

#[tokio::test]
async fn unreachable_target_closes_1011_after_101() {
    let free = unused_addr().await;
    let s = setup_with(|c| c.target(vm_resource_id("down"), 22, free)).await;
    let mut ws = s.mint_then_websocket(&vm_resource_id("down")).await;
    assert_eq!(next_close(&mut ws).await, Some(1011));
}

#[tokio::test]
async fn target_eof_flushes_then_closes_1000() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut c, _) = listener.accept().await.unwrap();
        c.write_all(b"goodbye").await.unwrap();
    });
    let s = setup_with(|c| c.target(vm_resource_id("talker"), 22, addr)).await;
    let mut ws = s.mint_then_websocket(&vm_resource_id("talker")).await;
    let mut got = Vec::new();
    let code = loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((got.as_slice(), code), (&b"goodbye"[..], Some(1000)));
}

#[tokio::test]
async fn control_api_needs_the_per_run_secret() {
    let s = setup().await;
    let (auth, _, _ws) = s.tunnel().await;
    let secret = s.emu.control_secret().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    let other = setup().await;
    assert_ne!(other.emu.control_secret(), secret, "the secret is per run");
    let request = |method: &str, path: &str, secret: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, s.client.authority("localhost"));
        if let Some(secret) = secret {
            b = b.header(CONTROL_SECRET_HEADER, secret);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let close = format!("/_emulator/sessions/{}/close?code=4001", enc(&auth));
    for (method, path) in [
        ("GET", "/_emulator/sessions"),
        ("GET", "/_emulator/events"),
        ("GET", "/_emulator/stats"),
        ("GET", "/_emulator/config"),
        ("POST", "/_emulator/reset"),
        ("POST", close.as_str()),
    ] {
        for wrong in [None, Some("wrong"), Some(&secret[..secret.len() - 1])] {
            let r = s
                .client
                .send("localhost", request(method, path, wrong))
                .await;
            assert_eq!(r.status, 401, "{method} {path} with {wrong:?}");
            let body = String::from_utf8_lossy(&r.body);
            assert!(!body.contains(&auth), "{method} {path}: {body}");
        }
    }
    // Nothing was reset or closed by the refused requests.
    assert_eq!(s.emu.sessions().len(), 1);
    let r = s
        .client
        .send(
            "localhost",
            request("GET", "/_emulator/sessions", Some(&secret)),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["state"], "connected");
}

#[tokio::test]
async fn control_api_over_https() {
    let s = setup().await;
    let (auth, _, mut ws) = s.tunnel().await;
    let secret = s.emu.control_secret().to_owned();
    let get = |path: &str| {
        Request::get(path)
            .header(HOST, s.client.authority("localhost"))
            .header(CONTROL_SECRET_HEADER, &secret)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let stats = s
        .client
        .send("localhost", get("/_emulator/stats"))
        .await
        .json();
    assert_eq!(stats["tokens_issued"], 1);
    let sessions = s
        .client
        .send("localhost", get("/_emulator/sessions"))
        .await
        .json();
    assert_eq!(sessions[0]["state"], "connected");
    assert!(sessions[0]["createdAt"].is_string());

    let close = Request::post(format!(
        "/_emulator/sessions/{}/close?code=4001",
        enc(&auth)
    ))
    .header(HOST, s.client.authority("localhost"))
    .header(CONTROL_SECRET_HEADER, &secret)
    .body(Full::new(Bytes::new()))
    .unwrap();
    assert_eq!(s.client.send("localhost", close).await.status, 204);
    assert_eq!(next_close(&mut ws).await, Some(4001));

    let put = Request::put("/_emulator/config")
        .header(HOST, s.client.authority("localhost"))
        .header(CONTROL_SECRET_HEADER, &secret)
        .body(Full::new(Bytes::from_static(
            br#"{"token_error":{"status":403,"message":"java.lang.NullPointerException"}}"#,
        )))
        .unwrap();
    assert_eq!(s.client.send("localhost", put).await.status, 204);
    assert_eq!(s.emu.faults().token_error.unwrap().status, 403);
    let r = s.mint().await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (403, Some("java.lang.NullPointerException"))
    );

    let events = s
        .client
        .send("localhost", get("/_emulator/events"))
        .await
        .json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "token_request")
    );
    let reset = Request::post("/_emulator/reset")
        .header(HOST, s.client.authority("localhost"))
        .header(CONTROL_SECRET_HEADER, &secret)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(s.client.send("localhost", reset).await.status, 204);
    assert!(s.emu.sessions().is_empty());
    assert_eq!(s.emu.faults(), Faults::default());
}

#[tokio::test]
async fn token_faults_429_html_502_and_scopes() {
    let s = setup_with_faults(Faults::default().token_429(1, 3)).await;
    let r = s.mint().await;
    assert_eq!(
        (r.status, r.headers["retry-after"].to_str().unwrap()),
        (429, "3")
    );
    assert_eq!(s.mint().await.status, 200);

    s.emu.set_faults(Faults {
        token_html_502: true,
        ..Faults::default()
    });
    let r = s.mint().await;
    assert_eq!(r.status, 502);
    assert!(
        r.headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // Only the 5th POST (counting all) fails.
    s.emu
        .set_faults(Faults::default().token_error(500, "boom").for_nth_token(5));
    assert_eq!(s.mint().await.status, 200);
    assert_eq!(s.mint().await.status, 500);
    assert_eq!(s.mint().await.status, 200);
    assert_eq!(s.emu.stats().token_requests, 6);
}

#[tokio::test]
async fn unsafe_token_alphabet_needs_escaping() {
    let s = setup_with_faults(Faults {
        unsafe_tokens: true,
        ..Faults::default()
    })
    .await;
    let v = s.mint().await.json();
    let (ws, node, auth) = (
        v["websocketToken"].as_str().unwrap(),
        v["nodeId"].as_str().unwrap(),
        v["authToken"].as_str().unwrap(),
    );
    assert!(ws.contains('/') && ws.contains('%') && ws.contains('+'));
    // Unescaped, `/` splits the path: the server cannot find the token.
    let raw = format!("/webtunnelv2/{ws}?X-Node-Id={node}");
    if raw.parse::<http::Uri>().is_ok() {
        assert_eq!(
            s.client.upgrade(&s.dns, &raw).await.unwrap_err().status,
            404
        );
    }
    let path = format!("/webtunnelv2/{}?X-Node-Id={node}", enc(ws));
    let mut sock = s.websocket_at(&path).await;
    sock.close(None).await.unwrap();
    assert_eq!(s.client.delete(&s.dns, auth, node).await, 204);
}

#[tokio::test]
async fn delete_fault_and_orphan_detection() {
    let s = setup().await;
    let v = s.mint().await.json();
    let (auth, node) = (
        v["authToken"].as_str().unwrap(),
        v["nodeId"].as_str().unwrap(),
    );
    s.emu.set_faults(Faults {
        delete_status: Some(500),
        ..Faults::default()
    });
    assert_eq!(s.client.delete(&s.dns, auth, node).await, 500);
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.emu.assert_no_orphans()));
    let msg = panicked.unwrap_err();
    let text = msg.downcast_ref::<String>().unwrap();
    assert!(
        text.contains("never deleted") && !text.contains(auth),
        "{text}"
    );
    s.emu.set_faults(Faults {
        delete_status: Some(200),
        ..Faults::default()
    });
    assert_eq!(s.client.delete(&s.dns, auth, node).await, 200);
    s.emu.assert_no_orphans();
}

#[tokio::test]
async fn reset_after_bytes_drops_without_close() {
    let s = setup_with_faults(Faults::default().reset_after_bytes(1)).await;
    let (_, _, mut ws) = s.tunnel().await;
    ws.send(Message::Binary(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    let end = tokio::time::timeout(T, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => return "close",
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return "dropped",
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, "dropped");
    assert_eq!(s.emu.stats().close_frames_sent, 0);
}

#[tokio::test]
async fn close_after_bytes_and_server_pings() {
    let s = setup_with_faults(Faults {
        server_ping_interval: Some(Duration::from_millis(20)),
        ..Faults::default().close_after_bytes(8, 4000, "quota")
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    // tungstenite answers pings while the client reads.
    let deadline = tokio::time::Instant::now() + T;
    while s.emu.stats().pongs_received < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no pongs");
        let _ = tokio::time::timeout(Duration::from_millis(20), ws.next()).await;
    }
    assert!(s.emu.stats().pings_sent >= 2);
    ws.send(Message::Binary(Bytes::from_static(b"12345678")))
        .await
        .unwrap();
    assert_eq!(next_close(&mut ws).await, Some(4000));
}

#[tokio::test]
async fn stalled_target_backpressures_the_client() {
    let (addr, stalled) = spawn_stalled_target().await.unwrap();
    let s = setup_with(|c| c.target(vm_resource_id("slow"), 22, addr)).await;
    let ws = s.mint_then_websocket(&vm_resource_id("slow")).await;
    assert!(stalled.wait_for_connections(1, T).await);
    // The client offers far more than any buffer on the way holds: 64 MiB.
    const OFFERED: usize = 64 * 1024 * 1024;
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let mut ws = ws;
            let frame = Bytes::from(vec![0u8; 64 * 1024]);
            while sent.load(Ordering::SeqCst) < OFFERED {
                if ws.send(Message::Binary(frame.clone())).await.is_err() {
                    break;
                }
                sent.fetch_add(frame.len(), Ordering::SeqCst);
            }
            ws
        }
    });
    // The event that shows the push-back, not a timing: the relay's reader found its queue
    // toward the target full and waits for the target (which never reads). A relay that
    // buffered without bound would never get there (the hang guard fails the test).
    assert!(
        s.emu.wait_until(|st| st.up_queue_full_waits >= 1, T).await,
        "the relay never pushed back: {:?}",
        s.emu.stats()
    );
    // While it waits it reads nothing more: what it took is bounded, and the client could not
    // hand over everything it offered.
    let taken = s.emu.stats().bytes_up;
    assert!(taken < 16 * 1024 * 1024, "{taken}");
    assert!(
        !sender.is_finished() && sent.load(Ordering::SeqCst) < OFFERED,
        "the client sent everything: nothing pushed back"
    );
    sender.abort();
}

#[tokio::test]
async fn latency_is_pipelined_and_relay_still_echoes() {
    let s = setup_with_faults(Faults {
        relay_latency: Some(Duration::from_millis(30)),
        ..Faults::default()
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    for _ in 0..20 {
        ws.send(Message::Binary(Bytes::from(vec![1u8; 1000])))
            .await
            .unwrap();
    }
    let mut got = 0;
    tokio::time::timeout(T, async {
        while got < 20_000 {
            if let Some(Ok(Message::Binary(b))) = ws.next().await {
                got += b.len();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, 20_000);
}

#[tokio::test]
async fn shutdown_closes_live_websockets_with_1001() {
    let s = setup().await;
    let (_, _, mut ws) = s.tunnel().await;
    assert!(s.emu.wait_until(|st| st.live_websockets == 1, T).await);
    let Setup { emu, .. } = s;
    let closing = tokio::spawn(emu.shutdown());
    assert_eq!(next_close(&mut ws).await, Some(1001));
    drop(ws);
    tokio::time::timeout(T, closing).await.unwrap().unwrap();
}

#[tokio::test]
async fn resolve_overrides_and_endpoints() {
    let s = setup().await;
    let names: Vec<String> = s
        .emu
        .resolve_overrides()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&s.dns) && names.contains(&DEFAULT_DATA_POD_HOST.to_owned()));
    assert!(
        s.emu
            .resolve_overrides()
            .iter()
            .all(|(_, ip)| ip.is_loopback())
    );
    assert_eq!(
        s.emu.endpoint_for(&s.dns),
        format!("{}:{}", s.dns, s.emu.local_addr().port())
    );
}

#[tokio::test]
async fn ip_connect_relays_to_the_literal_address() {
    let (echo, _task) = spawn_echo_target().await.unwrap();
    let s = setup_with(|mut c| {
        c.bastions[0].enable_ip_connect = true;
        c.ip_connect_ports(None)
    })
    .await;
    let bastion = s.emu.bastion(&s.dns).unwrap().clone();
    let id = bastion.ip_connect_resource_id("127.0.0.1".parse().unwrap());
    let body = |hostname: &str| {
        format!(
            "{}&hostname={hostname}",
            form(&id, echo.port(), &arm_token())
        )
    };
    assert_eq!(
        s.client
            .post_form(&s.dns, &body("10.0.0.9"), &[])
            .await
            .status,
        400
    );
    let v = s
        .client
        .post_form(&s.dns, &body("127.0.0.1"), &[])
        .await
        .json();
    assert_eq!(s.emu.sessions()[0].hostname.as_deref(), Some("127.0.0.1"));
    let mut ws = s.websocket_for(&v).await;
    ws.send(Message::Binary(Bytes::from_static(b"ip")))
        .await
        .unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Binary(b))) if &b[..] == b"ip"));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn ip_connect_port_allow_list_and_flag() {
    let off = BastionFixture::standard(TEST_TENANT).dns_name("bst-noip.bastion.test");
    let s = setup_with(|mut c| {
        c.bastions[0].enable_ip_connect = true;
        c.with_bastion(off)
    })
    .await;
    let id = s
        .emu
        .bastion(&s.dns)
        .unwrap()
        .ip_connect_resource_id("10.1.2.3".parse().unwrap());
    let post = |host: &str, port: u16| {
        let body = format!("{}&hostname=10.1.2.3", form(&id, port, &arm_token()));
        let host = host.to_owned();
        let client = &s.client;
        async move { client.post_form(&host, &body, &[]).await.status }
    };
    assert_eq!(post(&s.dns, 8080).await, 403);
    assert_eq!(post(&s.dns, 22).await, 200);
    assert_eq!(post("bst-noip.bastion.test", 22).await, 403);
}

#[tokio::test]
async fn target_bursts_are_cut_into_frames_of_at_most_the_server_read_size() {
    // The relay reads the target in large pieces; what it sends still keeps the frame shape.
    let s = setup_with_faults(Faults {
        server_read_size: Some(1000),
        ..Faults::default()
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    let data: Vec<u8> = (0..25_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(data.clone().into())).await.unwrap();
    let mut echoed = Vec::new();
    let mut frames = 0u64;
    while echoed.len() < data.len() {
        match recv(&mut ws).await {
            Message::Binary(b) => {
                assert!(
                    (1..=1000).contains(&b.len()),
                    "a server frame of {} bytes",
                    b.len()
                );
                echoed.extend_from_slice(&b);
                frames += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, data);
    assert!(frames >= 25, "{frames} frames");
    assert_eq!(s.emu.stats().frames_down, frames);
    assert_eq!(s.emu.stats().bytes_down, 25_000);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn server_frame_quirks() {
    let s = setup_with_faults(Faults {
        fragment_size: Some(3),
        empty_frames: true,
        unsolicited_pong: true,
        text_frame: Some("hi".into()),
        ..Faults::default()
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    assert_eq!(
        recv(&mut ws).await,
        Message::Pong(Bytes::from_static(b"unsolicited"))
    );
    assert_eq!(recv(&mut ws).await, Message::Text("hi".into()));
    ws.send(Message::Binary(Bytes::from_static(b"abcdefgh")))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, Message::Binary(Bytes::new()));
    // tungstenite reassembles the three fragments.
    assert_eq!(
        recv(&mut ws).await,
        Message::Binary(Bytes::from_static(b"abcdefgh"))
    );
    assert_eq!(s.emu.stats().frames_down, 3);

    s.emu.set_faults(Faults {
        rsv1_on_data: true,
        ..Faults::default()
    });
    let (_, _, mut ws) = s.tunnel().await;
    ws.send(Message::Binary(Bytes::from_static(b"x")))
        .await
        .unwrap();
    assert!(matches!(
        tokio::time::timeout(T, ws.next()).await.unwrap(),
        Some(Err(_))
    ));
}

#[tokio::test]
async fn handshake_and_token_rejection_knobs() {
    let free = unused_addr().await;
    let down = vm_resource_id("down");
    let s = setup_with(|c| c.target(down.clone(), 22, free)).await;
    s.emu.set_faults(
        Faults {
            ws_reject: Some(HttpFault::html(503)),
            ..Faults::default()
        }
        .for_resource(&s.vm)
        .and(Faults {
            target_failure: TargetFailure::Status502,
            ..Faults::default()
        }),
    );
    let v = s.mint().await.json();
    assert_eq!(s.websocket_refused(&v).await, 503);
    // A rejected upgrade does not consume the token.
    assert_eq!(s.websocket_refused(&v).await, 503);
    let v = s.mint_for(&down).await.json();
    assert_eq!(s.websocket_refused(&v).await, 502);

    s.emu.set_faults(Faults {
        deny_oids: vec!["oid-1".into()],
        ..Faults::default()
    });
    let r = s.mint().await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (403, Some("java.lang.NullPointerException"))
    );

    s.emu.set_faults(Faults {
        omit_websocket_token: true,
        ..Faults::default()
    });
    let v = s.mint().await.json();
    assert!(v.get("websocketToken").is_none() && v.get("authToken").is_some());
}

#[tokio::test]
async fn hang_after_upgrade_sends_nothing() {
    let s = setup_with_faults(Faults {
        hang_after_upgrade: true,
        ..Faults::default()
    })
    .await;
    let (_, _, mut ws) = s.tunnel().await;
    ws.send(Message::Binary(Bytes::from_static(b"hello?")))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(150), ws.next())
            .await
            .is_err()
    );
    assert_eq!(s.emu.stats().live_websockets, 1);
    drop(ws);
    assert!(s.emu.wait_until(|st| st.live_websockets == 0, T).await);
}

#[tokio::test]
async fn delete_can_close_the_live_websocket_and_check_the_node() {
    let s = setup_with_faults(Faults {
        delete_closes_websocket: true,
        ..Faults::default()
    })
    .await;
    let (auth, node, mut ws) = s.tunnel().await;
    assert_eq!(s.client.delete(&s.dns, &auth, "some-other-node").await, 404);
    assert_eq!(s.client.delete(&s.dns, &auth, &node).await, 204);
    assert_eq!(next_close(&mut ws).await, Some(1000));
    s.emu.assert_no_orphans();
}

/// The service routes DELETE by node: by default a wrong or a missing `X-Node-Id` is refused
/// and the session stays live (its WebSocket too); only the session's own node deletes it.
#[tokio::test]
async fn delete_with_a_wrong_or_missing_node_is_refused_by_default() {
    let s = setup().await;
    let (auth, node, mut ws) = s.tunnel().await;
    assert_eq!(s.client.delete(&s.dns, &auth, "some-other-node").await, 404);
    assert_eq!(s.client.delete_without_node(&s.dns, &auth).await, 404);
    assert_eq!(s.client.delete(&s.dns, &auth, "").await, 404);
    let st = s.emu.stats();
    assert_eq!(
        (st.deletes, st.live_sessions, st.live_websockets),
        (0, 1, 1)
    );
    assert!(s.emu.sessions()[0].deleted_at.is_none());
    // The relay still works.
    ws.send(Message::Binary(Bytes::from_static(b"still here")))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut ws).await,
        Message::Binary(Bytes::from_static(b"still here"))
    );
    assert_eq!(s.client.delete(&s.dns, &auth, &node).await, 204);
    assert_eq!(s.emu.stats().deletes, 1);
    ws.close(None).await.unwrap();
    assert!(s.emu.wait_until(|st| st.live_websockets == 0, T).await);
    s.emu.assert_no_orphans();
}

/// `delete_ignores_node` restores the lenient behaviour: any node deletes.
#[tokio::test]
async fn delete_ignores_node_accepts_any_node() {
    let s = setup_with_faults(Faults {
        delete_ignores_node: true,
        ..Faults::default()
    })
    .await;
    let (auth, _, ws) = s.tunnel().await;
    assert_eq!(s.client.delete_without_node(&s.dns, &auth).await, 204);
    drop(ws);
    let (auth, _, ws) = s.tunnel().await;
    assert_eq!(s.client.delete(&s.dns, &auth, "some-other-node").await, 204);
    drop(ws);
    assert!(s.emu.wait_until(|st| st.live_websockets == 0, T).await);
    assert_eq!(s.emu.stats().deletes, 2);
    s.emu.assert_no_orphans();
}
