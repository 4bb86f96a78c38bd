//! The SvelteKit devalue decoders of the HuggingChat provider.

use llmux_provider_huggingchat::devalue::{Flat, Limits, inline_models, parse_literal, unflatten};
use serde_json::Value;

use super::{depth, json_size};
use crate::Target;
use crate::engine::{bucket, fnv};

/// Largest output the default limits allow, as serialised JSON bytes (values and node overhead;
/// strings may need escaping, up to 6 bytes per byte).
fn default_output_bound() -> usize {
    let l = Limits::default();
    6 * l.max_bytes + 32 * l.max_nodes
}

/// `unflatten` and `Flat` over `__data.json`.
pub const DEVALUE: Target = Target {
    name: "devalue",
    about: "devalue flattened __data.json: unflatten, Flat::field/array/hydrate_with (references, cycles, tags, specials)",
    run: devalue,
    seeds: devalue_seeds,
    dictionary: &[
        b"[\"Set\",",
        b"[\"Map\",",
        b"[\"Date\",\"2025-01-01T00:00:00.000Z\"]",
        b"[\"RegExp\",\"a+\",\"g\"]",
        b"[\"null\",",
        b"[\"BigInt\",\"1\"]",
        b"[\"Custom\",",
        b"-1",
        b"-2",
        b"-3",
        b"-6",
        b"-7",
        b"0",
        b"1",
        b"2",
        b"{\"messages\":1}",
        b"\"x\"",
        b",",
        b"[",
        b"]",
        b"{",
        b"}",
    ],
};

fn devalue_seeds() -> Vec<Vec<u8>> {
    [
        r#"[{"messages":1,"title":5,"model":6,"preprompt":7,"rootMessageId":3,"shared":8},[2],{"id":3,"from":4,"content":7},"0b7e3f2a","system","New Chat","Qwen/Qwen2.5-72B-Instruct","",false]"#,
        r#"[[1,2,3,4,5,6,-1,-2,-3,-4,-5,-6,7,8],["Date","2025"],["Set",9,10],["Map",9,10],["RegExp","a+","g"],["BigInt","1"],["null","k",9],["Map",11,9],["Custom",9],"s",1.5,{"x":9}]"#,
        r#"[{"self":0,"child":1},{"parent":0,"me":1}]"#,
        r#"[[1,1,1,1,1,1,1,1],[2,2,2,2,2,2,2,2],[3,3,3,3,3,3,3,3],[4,4,4,4],"leaf"]"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn check_node(data: &Value) -> u64 {
    let mut sig = Vec::new();
    match unflatten(data) {
        Ok(v) => {
            assert!(depth(&v) <= 260, "decoded value nests {} levels", depth(&v));
            let size = json_size(&v);
            assert!(size <= default_output_bound(), "decoded {size} bytes");
            sig.push(bucket(size));
        }
        Err(e) => sig.push(1 + bucket(e.message().len())),
    }
    if let Ok(flat) = Flat::new(data) {
        let limits = Limits {
            max_nodes: 2_000,
            max_depth: 32,
            max_bytes: 64 * 1024,
        };
        for i in -8..(flat.len() as i64).min(24) {
            if let Ok(v) = flat.hydrate_with(i, limits) {
                let size = json_size(&v);
                assert!(
                    size <= 6 * limits.max_bytes + 32 * limits.max_nodes,
                    "hydrate_with({i}) gave {size} bytes over its limits"
                );
                assert!(depth(&v) <= 34);
            }
            let _ = flat.field(i, "messages");
            let _ = flat.array(i);
            let _ = flat.object(i);
        }
        sig.push(bucket(flat.len()));
    }
    fnv(&sig)
}

fn devalue(data: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return 0;
    };
    // A whole `__data.json` answer: decode every node.
    if let Some(nodes) = v.get("nodes").and_then(Value::as_array) {
        let sigs: Vec<u64> = nodes
            .iter()
            .filter_map(|n| n.get("data"))
            .map(check_node)
            .collect();
        return fnv(&sigs);
    }
    check_node(&v)
}

/// `parse_literal` and `inline_models` over chat-ui's HTML page.
pub const DEVALUE_LITERAL: Target = Target {
    name: "devalue-literal",
    about: "devalue.uneval JavaScript literals: parse_literal, inline_models over an HTML page",
    run: literal,
    seeds: literal_seeds,
    dictionary: &[
        b"models:[",
        b",oldModels:[]",
        b"{id:\"",
        b"\"}",
        b"void 0",
        b"!0",
        b"!1",
        b"undefined",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"0x1F",
        b".6",
        b"1e3",
        b"\\u{1F600}",
        b"\\uD83D\\uDE00",
        b"\\x3e",
        b"\\u003C",
        b"'",
        b"\"",
        b"\\",
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b":",
        b",,",
    ],
};

fn literal_seeds() -> Vec<Vec<u8>> {
    [
        r#"[{id:"Qwen/Qwen2.5-72B-Instruct",name:'a\'b',n:.6,e:-1e3,h:0x1F,t:!0,f:!1,u:void 0,d:undefined,"q k":null,2:[1,,2,],s:"\u003Cb\x3e\u{1F600}\uD83D\uDE00"},],oldModels:[]"#,
        r#"<script>const data=[null,{type:"data",data:{settings:{activeModel:"x"},models:[{id:"Qwen/Qwen2.5-72B-Instruct",parameters:{temperature:.6,stop:["<|im_end|>"]},multimodal:false,tokenizer:void 0},{id:"meta-llama/Llama-3.2-11B-Vision-Instruct",multimodal:true}],oldModels:[],tools:[]}}];</script>"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn literal(data: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(data);
    let bound = 6 * text.len() + 16;
    let mut sig = Vec::new();
    match parse_literal(&text) {
        Ok((v, used)) => {
            assert!(used <= text.len() && text.is_char_boundary(used));
            assert!(
                json_size(&v) <= bound,
                "{} bytes decoded from {}",
                json_size(&v),
                text.len()
            );
            sig.push(bucket(json_size(&v)));
        }
        Err(e) => sig.push(100 + bucket(e.message().len())),
    }
    if let Ok(found) = inline_models(&text) {
        let size: usize = found.models.iter().map(json_size).sum();
        assert!(size <= bound);
        sig.push(2 + u64::from(found.exact) + bucket(found.models.len()));
    }
    fnv(&sig)
}
