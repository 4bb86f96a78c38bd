//! The fuzz targets and the helpers they share.

use std::cell::RefCell;

use serde_json::Value;

use crate::Target;
use crate::engine::{Rng, fnv};

pub mod apis;
pub mod devalue;
pub mod gateway;
pub mod gradio;
pub mod media;
pub mod multipart;
pub mod prompt;
pub mod responses;
pub mod stream;

/// Every target.
pub fn all() -> Vec<Target> {
    vec![
        stream::SSE,
        stream::JSONL,
        gradio::GRADIO,
        devalue::DEVALUE,
        devalue::DEVALUE_LITERAL,
        media::DATA_URI,
        multipart::MULTIPART,
        prompt::PROMPT,
        gateway::GATEWAY_PARSE,
        responses::RESPONSES_PARSE,
        gateway::GATEWAY,
        apis::MESSAGES_PARSE,
        apis::EMBEDDINGS_PARSE,
    ]
}

/// Splits `data` into chunks at points chosen by a generator seeded from the data itself
/// (deterministic per input), including empty chunks.
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut rng = Rng::new(fnv(&[
        data.len() as u64,
        u64::from(data.first().copied().unwrap_or(0)),
    ]));
    let mut cuts: Vec<usize> = match rng.below(4) {
        0 => (0..rng.below(4))
            .map(|_| rng.below(data.len() + 1))
            .collect(),
        1 => (0..rng.below(64))
            .map(|_| rng.below(data.len() + 1))
            .collect(),
        // many small chunks
        _ => {
            let mut v = Vec::new();
            let mut at = 0;
            while at < data.len() {
                at += 1 + rng.below(8);
                v.push(at.min(data.len()));
            }
            v
        }
    };
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = 0;
    for c in cuts {
        out.push(data.get(prev..c).unwrap_or_default());
        prev = c;
    }
    out.push(data.get(prev..).unwrap_or_default());
    out
}

/// Nesting depth of a JSON value (a scalar is 1), computed without recursion.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Serialised size of a JSON value, computed without recursion (and without serialising).
pub fn json_size(v: &Value) -> usize {
    let mut size = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        size = size.saturating_add(match v {
            Value::Null => 4,
            Value::Bool(_) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => s.len() + 2,
            Value::Array(a) => {
                stack.extend(a.iter());
                2 + a.len()
            }
            Value::Object(o) => {
                stack.extend(o.values());
                o.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
        });
    }
    size
}

/// Hash of a string, for signatures.
pub fn hash_str(s: &str) -> u64 {
    fnv(&s.bytes().map(u64::from).collect::<Vec<_>>())
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` to completion on this thread's current-thread runtime (with time enabled).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rt = slot.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime")
        });
        rt.block_on(f)
    })
}

/// A target that fails on purpose, to test the harness (not part of `all`): first byte mod 16
/// `1` panics, `2` hangs, `3` overflows the stack, `4` asks for 1 TiB.
pub const SELFTEST: Target = Target {
    name: "selftest",
    about: "fails on purpose (panic, hang, stack overflow, allocation failure) to test the harness",
    run: selftest,
    seeds: Vec::new,
    dictionary: &[],
};

fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        std::hint::black_box(recurse(std::hint::black_box(n - 1))) + 1
    }
}

fn selftest(data: &[u8]) -> u64 {
    match data.first().map(|b| b % 16) {
        Some(1) => panic!("selftest panic"),
        Some(2) => loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
        },
        Some(3) => recurse(u64::MAX),
        Some(4) => {
            let v: Vec<u8> = Vec::with_capacity(1 << 40);
            std::hint::black_box(v.capacity() as u64)
        }
        _ => 0,
    }
}
