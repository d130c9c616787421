//! Random identifiers: GUID-like node ids and session tokens.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::{Rng, RngExt};

/// A GUID-like string (`8-4-4-4-12` lowercase hex).
pub(crate) fn guid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An opaque token. URL-safe (base64url, 43 characters) by default; with `unsafe_alphabet`
/// it contains `+`, `/`, `=` and `%`, which a client must percent-encode in URLs.
pub(crate) fn token(rng: &mut impl Rng, unsafe_alphabet: bool) -> String {
    let b: [u8; 32] = rng.random();
    if unsafe_alphabet {
        // Standard base64 of 31 bytes ends in one `=`; the prefix guarantees every
        // troublesome character appears at least once.
        format!("a+b/c%d={}", STANDARD.encode(&b[..31]))
    } else {
        URL_SAFE_NO_PAD.encode(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let g = guid(&mut rng);
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
        let t = token(&mut rng, false);
        assert_eq!(t.len(), 43);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let u = token(&mut rng, true);
        for c in ['+', '/', '=', '%'] {
            assert!(u.contains(c));
        }
    }

    #[test]
    fn seeded_rng_is_reproducible() {
        let mut a = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(token(&mut a, false), token(&mut b, false));
    }
}
