//! The input generator: a coverage-less but structure-aware mutational fuzzer.
//!
//! Each input is either purely random bytes, a run of dictionary tokens, or a corpus entry (the
//! target's seeds, plus inputs that showed a new behaviour signature) put through 1–8 stacked
//! mutations: bit flips, byte sets, "interesting" bytes and numbers, insertions, deletions,
//! repetitions, splices with another entry, dictionary tokens, truncation. Generation is
//! deterministic for a seed.

use std::collections::HashSet;

/// Largest input generated (inputs are capped so that output bounds can be checked).
pub const MAX_INPUT: usize = 64 * 1024;

/// Most corpus entries kept (seeds included).
const MAX_CORPUS: usize = 4096;

/// A small, fast, deterministic PRNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        let mut r = Self(seed ^ 0x9e37_79b9_7f4a_7c15);
        if r.0 == 0 {
            r.0 = 0x2545_f491_4f6c_dd1d;
        }
        let _ = r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A length biased towards small values, at most `max`.
    pub fn small_len(&mut self, max: usize) -> usize {
        let cap = match self.below(4) {
            0 => 4,
            1 => 32,
            2 => 512,
            _ => max,
        };
        self.below(cap.min(max) + 1)
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 24) as u8
    }
}

/// Bytes every parser tends to care about.
const INTERESTING_BYTES: &[u8] = &[
    0, 0xff, 0x7f, 0x80, 0xc0, 0xc3, 0xe2, 0xef, 0xf0, b'\n', b'\r', b'\t', b' ', b':', b';', b',',
    b'"', b'\'', b'\\', b'{', b'}', b'[', b']', b'=', b'%', b'-', b'+', b'.', b'0', b'9', b'/',
    b'&',
];

/// Numbers as text that sit on boundaries.
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "-2",
    "-3",
    "-6",
    "-7",
    "127",
    "255",
    "256",
    "4096",
    "65535",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e400",
    "1.5",
    "0.1e-400",
    "1E5",
    "NaN",
    "Infinity",
];

/// Mutates corpus entries into new inputs.
pub struct Generator {
    rng: Rng,
    corpus: Vec<Vec<u8>>,
    seeds: usize,
    dictionary: &'static [&'static [u8]],
    signatures: HashSet<u64>,
}

impl Generator {
    /// A generator over `seeds` (at least one entry is used: an empty input when none).
    pub fn new(seed: u64, seeds: Vec<Vec<u8>>, dictionary: &'static [&'static [u8]]) -> Self {
        let mut corpus: Vec<Vec<u8>> = seeds
            .into_iter()
            .map(|mut s| {
                s.truncate(MAX_INPUT);
                s
            })
            .collect();
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        Self {
            rng: Rng::new(seed),
            seeds: corpus.len(),
            corpus,
            dictionary,
            signatures: HashSet::new(),
        }
    }

    /// Corpus size (seeds plus kept inputs).
    pub fn corpus_len(&self) -> usize {
        self.corpus.len()
    }

    /// Records the behaviour signature of `input`; a new one keeps the input in the corpus.
    pub fn feedback(&mut self, input: &[u8], signature: u64) {
        if self.signatures.insert(signature) {
            if self.corpus.len() < MAX_CORPUS {
                self.corpus.push(input.to_vec());
            } else {
                // Replace a random non-seed entry.
                let i = self.seeds + self.rng.below(self.corpus.len() - self.seeds);
                if let Some(slot) = self.corpus.get_mut(i) {
                    *slot = input.to_vec();
                }
            }
        }
    }

    /// The next input.
    pub fn next_input(&mut self) -> Vec<u8> {
        let mut out = match self.rng.below(20) {
            0 => {
                let n = self.rng.small_len(MAX_INPUT);
                (0..n).map(|_| self.rng.byte()).collect()
            }
            1 if !self.dictionary.is_empty() => {
                let n = 1 + self.rng.below(24);
                let mut v = Vec::new();
                for _ in 0..n {
                    v.extend_from_slice(self.token());
                }
                v
            }
            _ => {
                let mut v = self.pick().to_vec();
                let rounds = 1 + self.rng.below(8);
                for _ in 0..rounds {
                    self.mutate(&mut v);
                }
                v
            }
        };
        out.truncate(MAX_INPUT);
        out
    }

    fn pick(&mut self) -> &[u8] {
        // Seeds are picked more often than their share.
        let i = if self.rng.one_in(3) {
            self.rng.below(self.seeds)
        } else {
            self.rng.below(self.corpus.len())
        };
        self.corpus.get(i).map_or(&[][..], Vec::as_slice)
    }

    fn token(&mut self) -> &'static [u8] {
        let i = self.rng.below(self.dictionary.len());
        self.dictionary.get(i).copied().unwrap_or_default()
    }

    /// A random range `start..end` of `len` (possibly empty).
    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.rng.below(len + 1);
        let n = self.rng.small_len(len - start);
        (start, start + n)
    }

    fn mutate(&mut self, v: &mut Vec<u8>) {
        let len = v.len();
        match self.rng.below(16) {
            // flip a bit
            0 if len > 0 => {
                let i = self.rng.below(len);
                let bit = 1u8 << self.rng.below(8);
                if let Some(b) = v.get_mut(i) {
                    *b ^= bit;
                }
            }
            // set a random byte
            1 if len > 0 => {
                let i = self.rng.below(len);
                let b = self.rng.byte();
                if let Some(slot) = v.get_mut(i) {
                    *slot = b;
                }
            }
            // set an interesting byte
            2 if len > 0 => {
                let i = self.rng.below(len);
                let b = INTERESTING_BYTES
                    .get(self.rng.below(INTERESTING_BYTES.len()))
                    .copied()
                    .unwrap_or(0);
                if let Some(slot) = v.get_mut(i) {
                    *slot = b;
                }
            }
            // insert random bytes
            3 => {
                let at = self.rng.below(len + 1);
                let n = self.rng.small_len(64);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.byte()).collect();
                v.splice(at..at, bytes);
            }
            // insert interesting bytes
            4 => {
                let at = self.rng.below(len + 1);
                let n = 1 + self.rng.below(4);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        INTERESTING_BYTES
                            .get(self.rng.below(INTERESTING_BYTES.len()))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                v.splice(at..at, bytes);
            }
            // delete a range
            5 if len > 0 => {
                let (a, b) = self.range(len);
                v.drain(a..b);
            }
            // duplicate a range, possibly many times
            6 if len > 0 => {
                let (a, b) = self.range(len);
                let piece = v.get(a..b).map(<[u8]>::to_vec).unwrap_or_default();
                if !piece.is_empty() {
                    let times = match self.rng.below(4) {
                        0 => 1 + self.rng.below(1000),
                        _ => 1 + self.rng.below(8),
                    };
                    let extra = piece.len().saturating_mul(times).min(MAX_INPUT);
                    let rep: Vec<u8> = piece.iter().copied().cycle().take(extra).collect();
                    v.splice(b..b, rep);
                }
            }
            // splice with another corpus entry
            7 => {
                let other = self.pick().to_vec();
                let (oa, ob) = self.range(other.len());
                let (a, b) = self.range(len);
                let piece = other.get(oa..ob).map(<[u8]>::to_vec).unwrap_or_default();
                if self.rng.one_in(2) {
                    v.splice(a..b, piece);
                } else {
                    v.splice(a..a, piece);
                }
            }
            // crossover: head of this, tail of another
            8 => {
                let other = self.pick().to_vec();
                let a = self.rng.below(len + 1);
                let oa = self.rng.below(other.len() + 1);
                v.truncate(a);
                v.extend_from_slice(other.get(oa..).unwrap_or_default());
            }
            // insert or overwrite with a dictionary token
            9 | 10 if !self.dictionary.is_empty() => {
                let t = self.token();
                let at = self.rng.below(len + 1);
                if self.rng.one_in(2) {
                    v.splice(at..at, t.iter().copied());
                } else {
                    let end = (at + t.len()).min(len);
                    v.splice(at..end, t.iter().copied());
                }
            }
            // insert an interesting number
            11 => {
                let n = INTERESTING_NUMBERS
                    .get(self.rng.below(INTERESTING_NUMBERS.len()))
                    .copied()
                    .unwrap_or("0");
                let (a, b) = self.range(len);
                let b = if self.rng.one_in(2) { a } else { b.min(a + 24) };
                v.splice(a..b, n.bytes());
            }
            // truncate
            12 if len > 0 => {
                let at = self.rng.below(len);
                v.truncate(at);
            }
            // replace a byte value everywhere (e.g. LF → CR)
            13 if len > 0 => {
                let from = v.get(self.rng.below(len)).copied().unwrap_or(0);
                let to = INTERESTING_BYTES
                    .get(self.rng.below(INTERESTING_BYTES.len()))
                    .copied()
                    .unwrap_or(0);
                for b in v.iter_mut() {
                    if *b == from {
                        *b = to;
                    }
                }
            }
            // swap two ranges
            14 if len > 1 => {
                let a = self.rng.below(len);
                let b = self.rng.below(len);
                let (a, b) = (a.min(b), a.max(b));
                let n = self.rng.small_len((b - a).min(len - b));
                if n > 0 && a + n <= b {
                    let first = v.get(a..a + n).map(<[u8]>::to_vec).unwrap_or_default();
                    let second = v.get(b..b + n).map(<[u8]>::to_vec).unwrap_or_default();
                    v.splice(b..b + n, first);
                    v.splice(a..a + n, second);
                }
            }
            // repeat the whole input
            15 if len > 0 && len < MAX_INPUT / 2 => {
                let times = 2 + self.rng.below(8);
                let whole = v.clone();
                for _ in 1..times {
                    if v.len() + whole.len() > MAX_INPUT {
                        break;
                    }
                    v.extend_from_slice(&whole);
                }
            }
            _ => {
                let at = self.rng.below(len + 1);
                let b = self.rng.byte();
                v.insert(at, b);
            }
        }
        v.truncate(MAX_INPUT);
    }
}

/// A 64-bit FNV-1a hash, for behaviour signatures.
pub fn fnv(parts: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in p.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// A coarse bucket of `n` (0, 1, 2, 3–4, 5–8, …) so signatures don't explode on counts.
pub fn bucket(n: usize) -> u64 {
    u64::from(usize::BITS - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_bounded() {
        let seeds = vec![b"data: hello\n\n".to_vec(), vec![b'x'; MAX_INPUT]];
        let mut a = Generator::new(7, seeds.clone(), &[b"data:", b"\r\n"]);
        let mut b = Generator::new(7, seeds, &[b"data:", b"\r\n"]);
        for _ in 0..2000 {
            let x = a.next_input();
            assert!(x.len() <= MAX_INPUT);
            assert_eq!(x, b.next_input());
        }
    }

    #[test]
    fn feedback_grows_the_corpus_once_per_signature() {
        let mut g = Generator::new(1, vec![b"a".to_vec()], &[]);
        g.feedback(b"b", 1);
        g.feedback(b"c", 1);
        g.feedback(b"d", 2);
        assert_eq!(g.corpus_len(), 3);
    }
}
