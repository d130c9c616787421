//! A target that stops reading: the tunnel stops reading from the local client, so memory stays
//! bounded however much the client tries to send.
use crate::common;

use std::time::Duration;

use bastion_core::{Target, Tunnel};
use bastion_emulator::{BastionFixture, TargetFixture};
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_target_stops_the_local_client() {
    let (stalled, _target) = bastion_emulator::spawn_stalled_target().await.unwrap();
    let sink_id = bastion_emulator::vm_resource_id("sink");
    let h = Harness::start_with(BastionFixture::standard(TENANT), |c| {
        c.with_target(TargetFixture::new(&sink_id, 22, stalled))
    })
    .await;
    let tunnel = Tunnel::new(
        h.config(Target::resource(&sink_id, 22).unwrap()),
        credential(),
    )
    .unwrap();
    let served = Served::start(tunnel).await;
    let mut stream = served.connect().await;
    let chunk = vec![0x5a; 256 * 1024];
    let mut written: usize = 0;
    let limit: usize = 512 << 20;
    // Write until a write makes no progress for a second (or an absurd amount got through).
    while written < limit {
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => break,
        }
    }
    // Socket buffers on both loopback hops plus the tunnel's bounded buffers: tens of MiB at
    // most. Without backpressure the whole 512 MiB would be accepted.
    assert!(
        written < 64 << 20,
        "the tunnel accepted {} MiB from the client",
        written >> 20
    );
    let stats = h.emulator.stats();
    assert!(stats.bytes_up < 64 << 20, "{stats:?}");
    drop(stream);
    served.stop().await;
    h.assert_all_sessions_deleted().await;
}
