//! Incremental decoders for streamed response bodies.
//!
//! * [`sse`]: WHATWG Server-Sent Events (`text/event-stream`), as used by OpenAI-style APIs.
//! * [`jsonl`]: newline-delimited lines and JSON lines (HuggingChat, Hugging Face inference).
//!
//! Both accept bytes split at any point (mid-line, mid-CRLF, mid UTF-8 sequence), bound the memory a
//! malicious upstream can make them use, and never panic on any input.

pub mod jsonl;
pub mod sse;

/// Default bound of one line, and of one event's data, in bytes (16 MiB).
pub const DEFAULT_MAX_SIZE: usize = 16 * 1024 * 1024;

/// A lossily decoded excerpt of `bytes` for error snippets (at most ~160 bytes are decoded).
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let head = bytes.get(..160).unwrap_or(bytes);
    String::from_utf8_lossy(head).into_owned()
}

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in exactly the bytes of `w` equal to `b` (no false positives).
#[inline]
fn eq_mask(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

#[inline]
fn word(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_le_bytes)
}

/// Position of the first byte equal to `a` or `b`; scans 16 bytes at a time (SWAR).
#[inline]
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut blocks = hay.chunks_exact(16);
    let mut offset = 0usize;
    for block in &mut blocks {
        let (lo, hi) = block.split_at(8);
        let (lo, hi) = (word(lo), word(hi));
        let m = eq_mask(lo, a) | eq_mask(lo, b);
        if m != 0 {
            return Some(offset + (m.trailing_zeros() / 8) as usize);
        }
        let m = eq_mask(hi, a) | eq_mask(hi, b);
        if m != 0 {
            return Some(offset + 8 + (m.trailing_zeros() / 8) as usize);
        }
        offset += 16;
    }
    blocks
        .remainder()
        .iter()
        .position(|&c| c == a || c == b)
        .map(|i| offset + i)
}

/// Position of the last byte equal to `a` or `b`; scans 8 bytes at a time from the end (SWAR).
#[inline]
pub(crate) fn rfind2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut words = hay.rchunks_exact(8);
    let mut end = hay.len();
    for w in &mut words {
        end -= 8;
        let w = word(w);
        let m = eq_mask(w, a) | eq_mask(w, b);
        if m != 0 {
            return Some(end + 7 - (m.leading_zeros() / 8) as usize);
        }
    }
    words.remainder().iter().rposition(|&c| c == a || c == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_search_matches_naive() {
        let alphabet = [b'a', b'\n', b'\r', 0x8a, 0x0b, 0xff, 0x00, 0x0d ^ 0x80];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..70 {
            for _ in 0..40 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly filler so that matches are sparse.
                        let r = (seed % 64) as usize;
                        *alphabet.get(r).unwrap_or(&b'x')
                    })
                    .collect();
                let first = v.iter().position(|&c| c == b'\n' || c == b'\r');
                let last = v.iter().rposition(|&c| c == b'\n' || c == b'\r');
                assert_eq!(find2(&v, b'\n', b'\r'), first, "{v:?}");
                assert_eq!(rfind2(&v, b'\n', b'\r'), last, "{v:?}");
                let lf = v.iter().position(|&c| c == b'\n');
                assert_eq!(find2(&v, b'\n', b'\n'), lf, "{v:?}");
            }
        }
    }
}
