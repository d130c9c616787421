//! The fault profiles the soak cycles through on the tunnels' Bastion emulator (see
//! docs/protocol.md#fault-knobs). Most apply to a fraction of the sessions: the knobs are
//! scoped to every k-th token POST from the current count on, so that faulty and healthy
//! connections run side by side.

use std::time::Duration;

use bastion_emulator::{Faults, HttpFault, Scope};

/// One step of the cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// An in-band `HTTP/1.1 400` page right after the `101`, for one session in three.
    InBand400,
    /// The TCP connection dropped (no Close) after some relayed bytes, one session in three.
    ResetMidStream,
    /// Token POSTs answered 500 (JSON) or 502 (HTML), one in four each.
    TokenErrors,
    /// 429 with `Retry-After: 1` for the next 25 token POSTs.
    Throttled,
    /// Every token POST answered after 700 ms.
    SlowTokens,
    /// The server closes the WebSocket with 1000, 1001, 1011 or 4000 after some bytes.
    CloseCodes,
    /// One session in eight gets a `101` and then silence; every chunk is delayed 15 ms.
    Stalls,
    /// Server pings every 50 ms, fragmented messages, empty frames, a `101` without upgrade
    /// headers: quirks every connection must get through.
    PingsAndQuirks,
    /// DELETE answered 500 for one session in two, and slowly for the rest.
    DeleteErrors,
}

impl Profile {
    /// The cycle, in order.
    pub const CYCLE: [Profile; 9] = [
        Profile::InBand400,
        Profile::ResetMidStream,
        Profile::TokenErrors,
        Profile::Throttled,
        Profile::SlowTokens,
        Profile::CloseCodes,
        Profile::Stalls,
        Profile::PingsAndQuirks,
        Profile::DeleteErrors,
    ];

    /// A short name for the log and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Profile::InBand400 => "in-band 400",
            Profile::ResetMidStream => "resets mid-stream",
            Profile::TokenErrors => "token errors",
            Profile::Throttled => "429 Retry-After",
            Profile::SlowTokens => "slow token endpoint",
            Profile::CloseCodes => "close codes",
            Profile::Stalls => "stalls",
            Profile::PingsAndQuirks => "pings and quirks",
            Profile::DeleteErrors => "DELETE errors",
        }
    }

    /// Whether a tunnel stopped under this profile could fairly leave sessions undeleted (its
    /// DELETEs are being refused): no signal is sent while it is active.
    pub fn refuses_deletes(self) -> bool {
        self == Profile::DeleteErrors
    }

    /// The knobs, for token POSTs after the `issued`-th.
    pub fn faults(self, issued: u64) -> Faults {
        // Every k-th of the next 5,000 token POSTs (more than a step ever makes).
        let every = |k: u64, offset: u64, set: &dyn Fn(u64) -> Faults| -> Faults {
            let mut f = Faults::none();
            let mut n = issued + 1 + offset;
            while n <= issued + 5_000 {
                f = f.and(set(n).scoped(Scope::NthToken(n)));
                n += k;
            }
            f
        };
        match self {
            Profile::InBand400 => every(3, 0, &|_| Faults {
                in_band_http_after_upgrade: true,
                ..Faults::none()
            }),
            Profile::ResetMidStream => every(3, 1, &|n| {
                Faults::none().reset_after_bytes(4_096 + (n % 16) * 8_192)
            }),
            Profile::TokenErrors => every(4, 0, &|_| {
                Faults::none().token_error(500, "Internal error while creating the session")
            })
            .and(every(4, 2, &|_| Faults {
                token_error: Some(HttpFault::html(502)),
                ..Faults::none()
            })),
            Profile::Throttled => Faults::none().token_429(25, 1),
            Profile::SlowTokens => Faults {
                post_latency: Some(Duration::from_millis(700)),
                ..Faults::none()
            },
            Profile::CloseCodes => every(3, 2, &|n| {
                let code = [1000, 1001, 1011, 4000][(n % 4) as usize];
                Faults::none().close_after_bytes(2_048 + (n % 8) * 16_384, code, "soak")
            }),
            Profile::Stalls => Faults {
                relay_latency: Some(Duration::from_millis(15)),
                ..Faults::none()
            }
            .and(every(8, 0, &|_| Faults {
                hang_after_upgrade: true,
                ..Faults::none()
            })),
            Profile::PingsAndQuirks => Faults {
                server_ping_interval: Some(Duration::from_millis(50)),
                fragment_size: Some(1_000),
                empty_frames: true,
                upgrade_without_headers: true,
                unsolicited_pong: true,
                ..Faults::none()
            },
            Profile::DeleteErrors => Faults {
                delete_latency: Some(Duration::from_millis(300)),
                ..Faults::none()
            }
            .and(every(2, 0, &|_| Faults {
                delete_status: Some(500),
                ..Faults::none()
            })),
        }
    }
}
