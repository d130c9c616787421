//! Setup latency with pre-warmed sessions (`bastion tunnel --prewarm N`): the same sequential
//! connect-to-first-echoed-byte series as the plain setup rows, against a tunnel that keeps N
//! sessions connected ahead of need, compared with the direct series of the same RTT measured
//! in the same run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Ctx, Error, SetupRow, Stats, note, setup_series};

/// How long a tunnel may take to have its first N sessions ready.
const WARM_LIMIT: Duration = Duration::from_secs(30);

/// One setup row for a tunnel started with `--prewarm N` (`ctx.opts.prewarm`) and the given
/// global options and tunnel arguments; `direct` is the direct series of the same RTT.
pub(crate) async fn row(
    ctx: &Ctx,
    rtt_ms: u64,
    global: &[String],
    args: &[String],
    direct: &Stats,
) -> Result<SetupRow, Error> {
    let n = ctx.opts.prewarm;
    let mut args = args.to_vec();
    args.extend(["--prewarm".to_owned(), n.to_string()]);
    let t = ctx
        .tunnel(&format!("setup-{rtt_ms}ms-prewarm{n}"), global, &args)
        .await?;
    let measured = async {
        // The pool's first sessions: each `prewarmed` event is one more ready.
        let warm = tokio::time::timeout(WARM_LIMIT, async {
            while (t.events.prewarmed.load(Ordering::Relaxed) as usize) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if warm.is_err() {
            return Err(Error::new(format!(
                "the tunnel did not pre-warm {n} sessions within {WARM_LIMIT:?}"
            )));
        }
        note(format!(
            "setup: {rtt_ms} ms RTT, --prewarm {n}, {} connections",
            ctx.opts.setup_count
        ));
        let label = format!("tunnel {rtt_ms} ms prewarm {n}");
        Ok(SetupRow {
            rtt_ms,
            prewarm: n,
            tunnel: setup_series(t.port, ctx.opts.setup_count, &label).await?,
            direct: direct.clone(),
        })
    }
    .await;
    t.stop().await;
    measured
}
