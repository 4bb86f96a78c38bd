//! Random identifiers (g4f's `get_random_string` / `get_random_hex`, UUIDs, completion ids).
//!
//! All functions use the thread-local generator of `rand` (not meant for secrets).

use rand::RngExt;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"abcdef0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn uniformly from `alphabet` (ASCII, at most 64 characters): indices of
/// the fewest bits that cover the alphabet, cut from one 64-bit draw after another, out-of-range
/// ones rejected (so every character stays equally likely). The gateway makes one such id per
/// request; a range draw per character cost ten times as much.
fn from_alphabet(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len().clamp(1, 64);
    let bits = usize::BITS - (n - 1).leading_zeros();
    let mask = (1u64 << bits) - 1;
    let mut rng = rand::rng();
    let mut out = String::with_capacity(len);
    let (mut word, mut left) = (0u64, 0u32);
    while out.len() < len {
        if left < bits.max(1) {
            word = rng.random::<u64>();
            left = 64;
        }
        let i = usize::try_from(word & mask).unwrap_or(usize::MAX);
        word >>= bits;
        left -= bits.max(1);
        if let Some(&c) = alphabet.get(i).filter(|_| i < n) {
            out.push(char::from(c));
        }
    }
    out
}

/// `len` characters drawn uniformly from `[a-z0-9]` (g4f `get_random_string`).
pub fn random_string(len: usize) -> String {
    from_alphabet(LOWER_ALNUM, len)
}

/// `len` lower-case hex characters `[a-f0-9]` (g4f `get_random_hex`).
pub fn random_hex(len: usize) -> String {
    from_alphabet(HEX, len)
}

/// `len` characters drawn uniformly from `[A-Za-z0-9]` (used for `chatcmpl-…` ids).
pub fn random_alnum(len: usize) -> String {
    from_alphabet(ALNUM, len)
}

/// A random RFC 4122 version-4 UUID, lower-case and hyphenated (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets_and_lengths() {
        let s = random_string(200);
        assert_eq!(s.len(), 200);
        assert!(
            s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        let h = random_hex(64);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| matches!(c, b'a'..=b'f' | b'0'..=b'9')));
        let a = random_alnum(300);
        assert_eq!(a.len(), 300);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.bytes().any(|c| c.is_ascii_uppercase()));
        assert_eq!(random_string(0), "");
        assert_ne!(random_hex(32), random_hex(32));
    }

    #[test]
    fn characters_are_equally_likely() {
        for (alphabet, draw) in [
            (ALNUM, random_alnum as fn(usize) -> String),
            (LOWER_ALNUM, random_string),
            (HEX, random_hex),
        ] {
            let n = alphabet.len();
            let s = draw(n * 2000);
            let mut counts = [0usize; 256];
            for b in s.bytes() {
                counts[usize::from(b)] += 1;
            }
            for &c in alphabet {
                let k = counts[usize::from(c)];
                // expected 2000 each; 6 standard deviations is about ±270
                assert!(
                    (1700..=2300).contains(&k),
                    "{} drawn {k} times",
                    char::from(c)
                );
            }
        }
    }

    #[test]
    fn uuid_shape() {
        for _ in 0..100 {
            let u = uuid_v4();
            assert_eq!(u.len(), 36);
            let parts: Vec<&str> = u.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
            assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
            assert!(
                u.bytes()
                    .all(|c| c == b'-' || matches!(c, b'a'..=b'f' | b'0'..=b'9'))
            );
        }
        assert_ne!(uuid_v4(), uuid_v4());
    }
}
