//! Decoders for the two data formats SvelteKit (through its `devalue` library) puts in chat-ui's
//! responses:
//!
//! * the **flattened** form of `__data.json` (`nodes[i].data`): one JSON array whose first element
//!   is the root value and whose objects and arrays hold *indices* into that same array, with
//!   negative numbers for special values (`-1` undefined, `-2` an array hole, `-3` NaN, `-4`/`-5`
//!   ±Infinity, `-6` negative zero) and tagged arrays for non-JSON types (`["Date", "…"]`,
//!   `["Set", i, …]`, `["Map", k, v, …]`, `["BigInt", "…"]`, …). See [`Flat`] and [`unflatten`].
//! * the **inline JavaScript literal** of the hydration script in the HTML page
//!   (`models:[{id:"…",tokenizer:void 0,…}]`), produced by `devalue.uneval`. See
//!   [`parse_literal`] and [`inline_models`].
//!
//! Both decoders are total: any input gives a value or a [`DevalueError`], never a panic, and the
//! work they do is bounded — references may repeat and even form cycles (a cyclic back-reference
//! decodes to `null`), recursion is limited to [`MAX_DEPTH`] levels, the number of values one
//! decode may produce to [`Limits::max_nodes`] and their size to [`Limits::max_bytes`].
//!
//! ```
//! use llmux_provider_huggingchat::devalue::{Flat, unflatten};
//! use serde_json::json;
//!
//! let data = json!([{"messages": 1, "title": 4}, [2], {"id": 3}, "msg-1", "New Chat"]);
//! assert_eq!(
//!     unflatten(&data).unwrap(),
//!     json!({"messages": [{"id": "msg-1"}], "title": "New Chat"}),
//! );
//! // Targeted access without decoding everything:
//! let flat = Flat::new(&data).unwrap();
//! let messages = flat.array(flat.field(0, "messages").unwrap()).unwrap();
//! let last = Flat::index(messages.last().unwrap()).unwrap();
//! assert_eq!(flat.hydrate(flat.field(last, "id").unwrap()).unwrap(), json!("msg-1"));
//! ```

use std::fmt;

use serde_json::{Map, Number, Value};

/// Deepest nesting either decoder follows.
pub const MAX_DEPTH: usize = 256;

/// Why a devalue payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevalueError(String);

impl DevalueError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// What was wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DevalueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DevalueError {}

/// Result alias of this module.
pub type Result<T, E = DevalueError> = std::result::Result<T, E>;

/// Work limits of [`Flat::hydrate_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most values one decode may produce (shared references are counted each time they are
    /// expanded, so a payload that doubles at every level cannot blow up).
    pub max_nodes: usize,
    /// Deepest nesting followed (at most [`MAX_DEPTH`]).
    pub max_depth: usize,
    /// Most bytes of strings, keys and scalars one decode may produce (a long string referenced
    /// many times is counted each time it is copied).
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_nodes: 1_000_000,
            max_depth: MAX_DEPTH,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `undefined`.
const UNDEFINED: i64 = -1;
/// An array hole.
const HOLE: i64 = -2;
/// `NaN`.
const NAN: i64 = -3;
/// `Infinity`.
const POSITIVE_INFINITY: i64 = -4;
/// `-Infinity`.
const NEGATIVE_INFINITY: i64 = -5;
/// `-0`.
const NEGATIVE_ZERO: i64 = -6;

/// A flattened devalue array, for targeted reads ([`Flat::field`], [`Flat::array`]) and bounded
/// decoding ([`Flat::hydrate`]).
#[derive(Debug, Clone, Copy)]
pub struct Flat<'a> {
    values: &'a [Value],
}

impl<'a> Flat<'a> {
    /// Wraps the `data` array of a `__data.json` node. It must be a non-empty JSON array.
    pub fn new(data: &'a Value) -> Result<Self> {
        match data {
            Value::Array(values) if !values.is_empty() => Ok(Self { values }),
            Value::Array(_) => Err(DevalueError::new("empty devalue array")),
            other => Err(DevalueError::new(format!(
                "devalue data is not an array but {}",
                kind(other)
            ))),
        }
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Always false (an empty array is rejected by [`Flat::new`]).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Reads a reference: `v` must be an integer.
    pub fn index(v: &Value) -> Result<i64> {
        v.as_i64()
            .ok_or_else(|| DevalueError::new(format!("expected an index, found {}", kind(v))))
    }

    /// The stored (not decoded) value at a non-negative `index`.
    pub fn raw(&self, index: i64) -> Result<&'a Value> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| {
                DevalueError::new(format!(
                    "index {index} out of range (0..{})",
                    self.values.len()
                ))
            })
    }

    /// The stored object at `index` (its values are indices).
    pub fn object(&self, index: i64) -> Result<&'a Map<String, Value>> {
        match self.raw(index)? {
            Value::Object(o) => Ok(o),
            other => Err(DevalueError::new(format!(
                "value {index} is not an object but {}",
                kind(other)
            ))),
        }
    }

    /// The stored plain array at `index` (its elements are indices; tagged arrays such as
    /// `["Set", …]` are refused).
    pub fn array(&self, index: i64) -> Result<&'a [Value]> {
        match self.raw(index)? {
            Value::Array(a) if !a.first().is_some_and(Value::is_string) => Ok(a),
            Value::Array(_) => Err(DevalueError::new(format!(
                "value {index} is a tagged value, not an array"
            ))),
            other => Err(DevalueError::new(format!(
                "value {index} is not an array but {}",
                kind(other)
            ))),
        }
    }

    /// The index stored under `key` in the object at `index`.
    pub fn field(&self, index: i64, key: &str) -> Result<i64> {
        let obj = self.object(index)?;
        let v = obj
            .get(key)
            .ok_or_else(|| DevalueError::new(format!("object {index} has no key `{key}`")))?;
        Self::index(v)
    }

    /// Decodes the value at `index` (or a special negative constant) with the default [`Limits`].
    pub fn hydrate(&self, index: i64) -> Result<Value> {
        self.hydrate_with(index, Limits::default())
    }

    /// Decodes the value at `index` with explicit limits.
    pub fn hydrate_with(&self, index: i64, limits: Limits) -> Result<Value> {
        let mut h = Hydrator {
            flat: *self,
            on_stack: vec![false; self.values.len()],
            nodes: 0,
            bytes: 0,
            limits: Limits {
                max_depth: limits.max_depth.min(MAX_DEPTH),
                ..limits
            },
        };
        h.hydrate(index, 0)
    }
}

/// Decodes a whole flattened devalue payload (`nodes[i].data`) into plain JSON.
///
/// Mapping of non-JSON values: `undefined`, holes, NaN and ±Infinity → `null`; `-0` → `0`;
/// `Date`, `BigInt`, `URL`, typed arrays (base64) → their string; `RegExp` → `"/source/flags"`;
/// `Set` → array; `Map` → object (array of `[key, value]` pairs when a key is not a string);
/// an unknown tag (a custom SvelteKit transport type) → its decoded payload. A reference back to a
/// value that is still being decoded (a cycle) → `null`.
pub fn unflatten(data: &Value) -> Result<Value> {
    if let Some(n) = data.as_i64() {
        return special(n).ok_or_else(|| DevalueError::new(format!("invalid constant {n}")));
    }
    Flat::new(data)?.hydrate(0)
}

fn special(index: i64) -> Option<Value> {
    match index {
        UNDEFINED | HOLE | NAN | POSITIVE_INFINITY | NEGATIVE_INFINITY => Some(Value::Null),
        NEGATIVE_ZERO => Some(Value::from(0)),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Hydrator<'a> {
    flat: Flat<'a>,
    on_stack: Vec<bool>,
    nodes: usize,
    bytes: usize,
    limits: Limits,
}

/// Bytes a copy of `v` costs against [`Limits::max_bytes`]: string and key lengths, 8 per other
/// value (computed without recursion).
fn weight(v: &Value) -> usize {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::String(s) => s.len(),
            Value::Array(a) => {
                stack.extend(a);
                8
            }
            Value::Object(o) => {
                stack.extend(o.values());
                o.keys().map(String::len).sum::<usize>() + 8
            }
            _ => 8,
        });
    }
    total
}

impl Hydrator<'_> {
    fn hydrate(&mut self, index: i64, depth: usize) -> Result<Value> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(DevalueError::new(format!(
                "devalue payload expands to more than {} values",
                self.limits.max_nodes
            )));
        }
        if depth > self.limits.max_depth {
            return Err(DevalueError::new(format!(
                "devalue payload nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        if index < 0 {
            return special(index)
                .ok_or_else(|| DevalueError::new(format!("invalid constant {index}")));
        }
        let raw = self.flat.raw(index)?;
        let slot = usize::try_from(index).unwrap_or(usize::MAX);
        if !matches!(raw, Value::Array(_) | Value::Object(_)) {
            self.charge(weight(raw))?;
            return Ok(raw.clone());
        }
        if self.on_stack.get(slot).copied().unwrap_or(false) {
            return Ok(Value::Null);
        }
        if let Some(s) = self.on_stack.get_mut(slot) {
            *s = true;
        }
        let out = self.compound(raw, depth);
        if let Some(s) = self.on_stack.get_mut(slot) {
            *s = false;
        }
        out
    }

    /// Counts `n` more output bytes against the limit.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Err(DevalueError::new(format!(
                "devalue payload expands to more than {} bytes",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }

    fn child(&mut self, v: &Value, depth: usize) -> Result<Value> {
        let i = Flat::index(v)?;
        self.hydrate(i, depth + 1)
    }

    fn compound(&mut self, raw: &Value, depth: usize) -> Result<Value> {
        match raw {
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o {
                    self.charge(k.len())?;
                    let decoded = self.child(v, depth)?;
                    out.insert(k.clone(), decoded);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => match items.first() {
                Some(Value::String(tag)) => self.tagged(tag, items, depth),
                _ => {
                    let mut out = Vec::with_capacity(items.len().min(4096));
                    for v in items {
                        out.push(self.child(v, depth)?);
                    }
                    Ok(Value::Array(out))
                }
            },
            other => Ok(other.clone()),
        }
    }

    fn tagged(&mut self, tag: &str, items: &[Value], depth: usize) -> Result<Value> {
        let arg = items.get(1);
        let mut raw_arg = || -> Result<Value> {
            let v = arg.cloned().unwrap_or(Value::Null);
            self.charge(weight(&v))?;
            Ok(v)
        };
        match tag {
            "Date" | "BigInt" | "URL" | "URLSearchParams" | "Object" | "ArrayBuffer"
            | "Int8Array" | "Uint8Array" | "Uint8ClampedArray" | "Int16Array" | "Uint16Array"
            | "Int32Array" | "Uint32Array" | "Float32Array" | "Float64Array" | "BigInt64Array"
            | "BigUint64Array" => raw_arg(),
            "RegExp" => {
                let source = arg.and_then(Value::as_str).unwrap_or_default();
                let flags = items.get(2).and_then(Value::as_str).unwrap_or_default();
                self.charge(source.len() + flags.len() + 2)?;
                Ok(Value::String(format!("/{source}/{flags}")))
            }
            "Set" => {
                let mut out = Vec::new();
                for v in items.iter().skip(1) {
                    out.push(self.child(v, depth)?);
                }
                Ok(Value::Array(out))
            }
            "Map" => {
                let mut pairs = Vec::new();
                let mut rest = items.iter().skip(1);
                while let Some(k) = rest.next() {
                    let key = self.child(k, depth)?;
                    let value = match rest.next() {
                        Some(v) => self.child(v, depth)?,
                        None => Value::Null,
                    };
                    pairs.push((key, value));
                }
                if pairs.iter().all(|(k, _)| k.is_string()) {
                    let mut out = Map::new();
                    for (k, v) in pairs {
                        if let Value::String(k) = k {
                            out.insert(k, v);
                        }
                    }
                    Ok(Value::Object(out))
                } else {
                    Ok(Value::Array(
                        pairs
                            .into_iter()
                            .map(|(k, v)| Value::Array(vec![k, v]))
                            .collect(),
                    ))
                }
            }
            "null" => {
                let mut out = Map::new();
                let mut rest = items.iter().skip(1);
                while let Some(k) = rest.next() {
                    self.charge(weight(k))?;
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let value = match rest.next() {
                        Some(v) => self.child(v, depth)?,
                        None => Value::Null,
                    };
                    out.insert(key, value);
                }
                Ok(Value::Object(out))
            }
            // A custom transport type: its reviver gets the decoded payload.
            _ => match arg {
                Some(v) => self.child(v, depth),
                None => Ok(Value::Null),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inline JavaScript literals (`devalue.uneval` output).
// ---------------------------------------------------------------------------------------------

/// Parses one JavaScript value literal at the start of `src` (leading whitespace allowed) and
/// returns it with the number of bytes consumed.
///
/// Accepts what `devalue.uneval` and minifiers emit for plain data: objects with bare, quoted or
/// numeric keys, arrays (holes become `null`), single- or double-quoted strings with every JS
/// escape, numbers such as `.6`, `1e3`, `0x1f` or `-0`, `true`/`false`/`null`, `!0`/`!1`,
/// `undefined`/`void 0`, `NaN`/`Infinity` (→ `null`). Anything else (function calls, `new Date`,
/// template strings, …) is an error.
pub fn parse_literal(src: &str) -> Result<(Value, usize)> {
    let mut p = Parser {
        s: src.as_bytes(),
        src,
        pos: 0,
    };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// The models list found in chat-ui's HTML page.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineModels {
    /// The decoded model objects.
    pub models: Vec<Value>,
    /// True when the literal is followed by `,oldModels:` (the exact shape g4f looks for), false
    /// when it is only the first plausible `models:[…]` list of the page.
    pub exact: bool,
}

/// Finds the models list in chat-ui's HTML page: the JavaScript literal after `models:` in the
/// inline hydration data, preferring the one followed by `,oldModels:` (g4f looks for
/// `models:(\[.+?\]),oldModels:`) over the first list of objects with string `id`s.
pub fn inline_models(html: &str) -> Result<InlineModels> {
    let mut first: Option<Vec<Value>> = None;
    let mut from = 0;
    while let Some(rel) = html.get(from..).and_then(|rest| rest.find("models:")) {
        let at = from + rel;
        from = at + "models:".len();
        let preceded_by_ident = html[..at]
            .bytes()
            .next_back()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
        if preceded_by_ident {
            continue;
        }
        let rest = &html[from..];
        if !rest.trim_start().starts_with('[') {
            continue;
        }
        let Ok((Value::Array(items), used)) = parse_literal(rest) else {
            continue;
        };
        if !items
            .iter()
            .all(|m| m.get("id").is_some_and(Value::is_string))
        {
            continue;
        }
        if rest
            .get(used..)
            .is_some_and(|r| r.starts_with(",oldModels:"))
        {
            return Ok(InlineModels {
                models: items,
                exact: true,
            });
        }
        first.get_or_insert(items);
    }
    first
        .map(|models| InlineModels {
            models,
            exact: false,
        })
        .ok_or_else(|| DevalueError::new("no inline `models:[…]` literal in the page"))
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> DevalueError {
        DevalueError::new(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn starts_with(&self, lit: &str) -> bool {
        self.s
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(lit.as_bytes()))
    }

    fn ident(&mut self) -> &str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err("literal nested too deeply"));
        }
        self.ws();
        match self.peek() {
            None => Err(self.err("unexpected end of literal")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(q @ (b'"' | b'\'')) => self.string(q).map(Value::String),
            Some(b'!') => {
                self.pos += 1;
                match self.peek() {
                    Some(b'0') => {
                        self.pos += 1;
                        Ok(Value::Bool(true))
                    }
                    Some(b'1') => {
                        self.pos += 1;
                        Ok(Value::Bool(false))
                    }
                    _ => Err(self.err("unsupported `!` expression")),
                }
            }
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'$' => {
                let start = self.pos;
                match self.ident() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" | "undefined" | "NaN" | "Infinity" => Ok(Value::Null),
                    "void" => {
                        self.ws();
                        let _ = self.number()?;
                        Ok(Value::Null)
                    }
                    _ => {
                        self.pos = start;
                        Err(self.err("unsupported expression"))
                    }
                }
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value> {
        self.pos += 1; // {
        let mut out = Map::new();
        loop {
            self.ws();
            if self.eat(b'}') {
                return Ok(Value::Object(out));
            }
            let key = match self.peek() {
                Some(q @ (b'"' | b'\'')) => self.string(q)?,
                Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' => {
                    self.ident().to_owned()
                }
                _ => return Err(self.err("expected an object key")),
            };
            self.ws();
            if !self.eat(b':') {
                return Err(self.err("expected `:` after an object key"));
            }
            let v = self.value(depth + 1)?;
            out.insert(key, v);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(out));
            }
            return Err(self.err("expected `,` or `}` in an object"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        self.pos += 1; // [
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.eat(b']') {
                return Ok(Value::Array(out));
            }
            if self.eat(b',') {
                out.push(Value::Null); // a hole
                continue;
            }
            out.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(Value::Array(out));
            }
            return Err(self.err("expected `,` or `]` in an array"));
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        let negative = if self.eat(b'-') {
            true
        } else {
            self.eat(b'+');
            false
        };
        if self.starts_with("Infinity") {
            self.pos += "Infinity".len();
            return Ok(Value::Null);
        }
        if self.starts_with("0x") || self.starts_with("0X") {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let digits = self.src.get(digits_start..self.pos).unwrap_or_default();
            let n = i64::from_str_radix(digits, 16).map_err(|_| self.err("bad hex number"))?;
            return Ok(Value::from(if negative { -n } else { n }));
        }
        while let Some(b) = self.peek() {
            let sign_after_exp = matches!(b, b'+' | b'-')
                && matches!(self.s.get(self.pos.wrapping_sub(1)), Some(b'e' | b'E'));
            if b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E') || sign_after_exp {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        let text = text.strip_prefix('+').unwrap_or(text);
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        let f: f64 = text.parse().map_err(|_| self.err("bad number"))?;
        // JavaScript has one number type: integral values read as integers (`1e3` → 1000).
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            return Ok(Value::from(f as i64));
        }
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn hex(&mut self, n: usize) -> Result<u32> {
        let digits = self
            .src
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.err("truncated escape"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.err("bad escape"))?;
        self.pos += n;
        Ok(v)
    }

    fn string(&mut self, quote: u8) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        let mut pending_high: Option<u32> = None;
        loop {
            // Copy the run of plain characters at once.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == quote || b == b'\\' || b == b'\n' {
                    break;
                }
                self.pos += 1;
            }
            if self.pos > start {
                if let Some(h) = pending_high.take() {
                    out.push(char::from_u32(h).unwrap_or('\u{fffd}'));
                }
                out.push_str(self.src.get(start..self.pos).unwrap_or_default());
            }
            match self.peek() {
                None | Some(b'\n') => return Err(self.err("unterminated string")),
                Some(b) if b == quote => {
                    self.pos += 1;
                    if pending_high.is_some() {
                        out.push('\u{fffd}');
                    }
                    return Ok(out);
                }
                _ => {}
            }
            self.pos += 1; // backslash
            let Some(code) = self.escape()? else { continue };
            push_code(&mut out, &mut pending_high, code);
        }
    }

    /// Reads the escape after a `\` (at `self.pos`) and moves past it: the code unit it stands
    /// for, or `None` for a line continuation.
    fn escape(&mut self) -> Result<Option<u32>> {
        let Some(e) = self.peek() else {
            return Err(self.err("unterminated string"));
        };
        // Escapes are ASCII; a non-ASCII char after `\` is kept as is.
        let code: Option<u32> = match e {
            b'n' => Some(0x0a),
            b't' => Some(0x09),
            b'r' => Some(0x0d),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            b'0' if !self.s.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => Some(0),
            b'x' => {
                self.pos += 1;
                let v = self.hex(2)?;
                self.pos -= 1;
                Some(v)
            }
            b'u' => {
                self.pos += 1;
                Some(self.unicode_escape()?)
            }
            b'\n' => None, // line continuation
            b'\r' => {
                if self.s.get(self.pos + 1) == Some(&b'\n') {
                    self.pos += 1;
                }
                None
            }
            _ => {
                // `\"`, `\'`, `\\`, `\/` and any other char stand for themselves.
                let rest = self.src.get(self.pos..).unwrap_or_default();
                let c = rest.chars().next().unwrap_or('\u{fffd}');
                self.pos += c.len_utf8() - 1;
                Some(u32::from(c))
            }
        };
        self.pos += 1;
        Ok(code)
    }

    /// The code of a `\u` escape after the `u`: `{hex digits}` (at most U+10FFFF) or four hex
    /// digits. Leaves `self.pos` on the escape's last character.
    fn unicode_escape(&mut self) -> Result<u32> {
        if self.eat(b'{') {
            let start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let digits = self.src.get(start..self.pos).unwrap_or_default();
            let v = u32::from_str_radix(digits, 16)
                .ok()
                .filter(|v| *v <= 0x10_ffff)
                .ok_or_else(|| self.err("bad \\u{…} escape"))?;
            if self.peek() != Some(b'}') {
                return Err(self.err("bad \\u{…} escape"));
            }
            Ok(v)
        } else {
            let v = self.hex(4)?;
            self.pos -= 1;
            Ok(v)
        }
    }
}

/// Appends the code unit (or code point) `code` of an escape to `out`, pairing UTF-16 surrogates:
/// `pending_high` holds a high surrogate waiting for its low half; an unpaired one becomes U+FFFD.
fn push_code(out: &mut String, pending_high: &mut Option<u32>, code: u32) {
    match (pending_high.take(), code) {
        (Some(h), 0xdc00..=0xdfff) => {
            let c = 0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00);
            out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
        }
        (prev, 0xd800..=0xdbff) => {
            if prev.is_some() {
                out.push('\u{fffd}');
            }
            *pending_high = Some(code);
        }
        (prev, _) => {
            if prev.is_some() {
                out.push('\u{fffd}');
            }
            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn spec_transcript_data() {
        let data = json!([{"messages":1,"title":5,"model":6,"preprompt":7,"rootMessageId":3,"shared":8},[2],{"id":3,"from":4,"content":7},"0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b","system","New Chat","Qwen/Qwen2.5-72B-Instruct","",false]);
        let v = unflatten(&data).expect("decodes");
        assert_eq!(
            v,
            json!({"messages":[{"id":"0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b","from":"system","content":""}],
                   "title":"New Chat","model":"Qwen/Qwen2.5-72B-Instruct","preprompt":"",
                   "rootMessageId":"0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b","shared":false})
        );
    }

    #[test]
    fn specials_and_tags() {
        let data = json!([
            [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6, 7, 8],
            ["Date", "2025-01-01T00:00:00.000Z"],
            ["Set", 9, 10],
            ["Map", 9, 10],
            ["RegExp", "a+", "g"],
            ["BigInt", "12345678901234567890"],
            ["null", "k", 9],
            ["Map", 11, 9],
            ["Custom", 9],
            "s",
            1.5,
            {"x": 9}
        ]);
        let v = unflatten(&data).expect("decodes");
        assert_eq!(
            v,
            json!([
                "2025-01-01T00:00:00.000Z",
                ["s", 1.5],
                {"s": 1.5},
                "/a+/g",
                "12345678901234567890",
                {"k": "s"},
                null, null, null, null, null, 0,
                [[{"x": "s"}, "s"]],
                "s"
            ])
        );
        assert_eq!(unflatten(&json!(-1)).expect("undefined"), Value::Null);
        assert!(unflatten(&json!(-99)).is_err());
        assert!(unflatten(&json!([])).is_err());
        assert!(unflatten(&json!({"a": 1})).is_err());
    }

    #[test]
    fn cycles_become_null_and_blowups_are_bounded() {
        let data = json!([{"self": 0, "child": 1}, {"parent": 0, "me": 1}]);
        assert_eq!(
            unflatten(&data).expect("decodes"),
            json!({"self": null, "child": {"parent": null, "me": null}})
        );
        // Every level references the next one twice: 2^60 values if expanded naively.
        let mut doubling: Vec<Value> = (0..60).map(|i| json!([i + 1, i + 1])).collect();
        doubling.push(json!("leaf"));
        let err = unflatten(&Value::Array(doubling)).expect_err("too big");
        assert!(err.message().contains("more than"), "{err}");
        // A long chain is cut by the depth limit instead of overflowing the stack.
        let mut chain: Vec<Value> = (0..100_000).map(|i| json!([i + 1])).collect();
        chain.push(json!(1));
        let err = unflatten(&Value::Array(chain)).expect_err("too deep");
        assert!(err.message().contains("deeper"), "{err}");
    }

    /// Found while building the `devalue` fuzz target (llmux-fuzz): a long string referenced
    /// many times was copied once per reference (only values were counted, not their size), so
    /// a 60 KiB payload could decode to gigabytes.
    #[test]
    fn repeated_long_strings_are_bounded_by_bytes() {
        let long = "x".repeat(40_000);
        let refs: Vec<Value> = (0..2_000).map(|_| json!(1)).collect();
        let data = json!([refs, long]);
        let limits = Limits {
            max_bytes: 10 * 1024 * 1024,
            ..Limits::default()
        };
        let err = Flat::new(&data)
            .and_then(|f| f.hydrate_with(0, limits))
            .expect_err("80 MB of copies");
        assert!(err.message().contains("bytes"), "{err}");
        let refs: Vec<Value> = (0..20_000).map(|_| json!(1)).collect();
        let err = unflatten(&json!([refs, long])).expect_err("800 MB of copies");
        assert!(err.message().contains("bytes"), "{err}");
        // Tagged payloads and keys are counted too.
        let big = json!(["Date", long]);
        let err = Flat::new(&json!([[1, 1, 1], big]))
            .and_then(|f| {
                f.hydrate_with(
                    0,
                    Limits {
                        max_bytes: 100_000,
                        ..Limits::default()
                    },
                )
            })
            .expect_err("copied tag payloads");
        assert!(err.message().contains("bytes"), "{err}");
        // Below the limit nothing changes.
        let ok = Flat::new(&json!([[1, 1], "ab"]))
            .and_then(|f| {
                f.hydrate_with(
                    0,
                    Limits {
                        max_bytes: 4,
                        ..Limits::default()
                    },
                )
            })
            .expect("4 bytes");
        assert_eq!(ok, json!(["ab", "ab"]));
    }

    #[test]
    fn targeted_access_errors() {
        let data = json!([{"messages": 1}, "not an array", ["Set"]]);
        let flat = Flat::new(&data).expect("flat");
        assert!(flat.array(flat.field(0, "messages").expect("idx")).is_err());
        assert!(flat.array(2).is_err());
        assert!(flat.field(0, "nope").is_err());
        assert!(flat.raw(-1).is_err());
        assert!(flat.raw(3).is_err());
        assert!(Flat::index(&json!("1")).is_err());
    }

    #[test]
    fn literal_parsing() {
        let src = r#"[{id:"Qwen/Qwen2.5-72B-Instruct",name:'a\'b',n:.6,e:-1e3,h:0x1F,t:!0,f:!1,u:void 0,d:undefined,"q k":null,2:[1,,2,],s:"\u003Cb\x3e\u{1F600}\uD83D\uDE00"},],oldModels:[]"#;
        let (v, used) = parse_literal(src).expect("parses");
        assert_eq!(&src[used..], ",oldModels:[]");
        assert_eq!(
            v,
            json!([{"id":"Qwen/Qwen2.5-72B-Instruct","name":"a'b","n":0.6,"e":-1000,"h":31,"t":true,"f":false,
                    "u":null,"d":null,"q k":null,"2":[1,null,2],"s":"<b>😀😀"}])
        );
        for bad in [
            "",
            "{",
            "[1 2]",
            "{a 1}",
            "new Date(0)",
            "\"abc",
            "fn()",
            "!x",
            "{a:1",
            "\"\\u12\"",
        ] {
            assert!(parse_literal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_models_from_page() {
        let html = r#"<script>const data=[null,{type:"data",data:{settings:{activeModel:"x"},models:[{id:"Qwen/Qwen2.5-72B-Instruct",parameters:{temperature:.6,stop:["<|im_end|>"]},multimodal:false,tokenizer:void 0},{id:"meta-llama/Llama-3.2-11B-Vision-Instruct",multimodal:true}],oldModels:[],tools:[]}}];</script>"#;
        let found = inline_models(html).expect("found");
        assert!(found.exact);
        let models = found.models;
        assert_eq!(models.len(), 2);
        assert_eq!(models[1]["multimodal"], json!(true));
        assert_eq!(models[0]["parameters"]["stop"], json!(["<|im_end|>"]));
        assert!(inline_models("<html>no data</html>").is_err());
        assert!(inline_models("oldModels:[{id:\"x\"}]").is_err());
        // Without the `oldModels` marker the first plausible list is used.
        let loose = inline_models("x={models:[{id:\"a\"}]}").expect("found");
        assert!(!loose.exact);
        assert_eq!(loose.models[0]["id"], json!("a"));
    }

    fn flat_value() -> impl Strategy<Value = Value> {
        let idx = prop_oneof![-8i64..12, any::<i64>()];
        prop_oneof![
            idx.clone().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::String),
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            proptest::collection::vec(idx.clone(), 0..5)
                .prop_map(|v| Value::Array(v.into_iter().map(Value::from).collect())),
            (
                prop_oneof![
                    Just("Set"),
                    Just("Map"),
                    Just("null"),
                    Just("Date"),
                    Just("RegExp"),
                    Just("Odd")
                ],
                proptest::collection::vec(
                    prop_oneof![
                        idx.clone().prop_map(Value::from),
                        "[a-z]{0,3}".prop_map(Value::String)
                    ],
                    0..5
                )
            )
                .prop_map(|(tag, rest)| {
                    let mut v = vec![Value::String(tag.into())];
                    v.extend(rest);
                    Value::Array(v)
                }),
            proptest::collection::btree_map(
                "[a-c]",
                prop_oneof![idx.prop_map(Value::from), Just(json!("x"))],
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn unflatten_is_total(values in proptest::collection::vec(flat_value(), 0..16)) {
            let data = Value::Array(values);
            let _ = unflatten(&data);
            if let Ok(flat) = Flat::new(&data) {
                for i in -8..20 {
                    let _ = flat.hydrate_with(i, Limits { max_nodes: 10_000, max_depth: 64, max_bytes: 1 << 20 });
                    let _ = flat.field(i, "a");
                    let _ = flat.array(i);
                }
            }
        }

        #[test]
        fn dense_self_references_stay_bounded(n in 1usize..40, fanout in 1usize..6) {
            // Every value references every later value (and itself): a DAG with cycles whose
            // naive expansion is astronomically large.
            let values: Vec<Value> = (0..n)
                .map(|i| Value::Array((0..fanout).map(|k| Value::from(((i + k) % n) as i64)).chain([Value::from(i as i64)]).collect()))
                .collect();
            let r = Flat::new(&Value::Array(values)).and_then(|f| f.hydrate_with(0, Limits { max_nodes: 50_000, max_depth: 256, ..Limits::default() }));
            prop_assert!(r.is_ok() || r.is_err());
        }

        #[test]
        fn literal_parser_is_total(s in "[\\[\\]{}:,'\"\\\\a-z0-9 .!xu-]{0,60}") {
            let _ = parse_literal(&s);
            let _ = inline_models(&s);
        }

        #[test]
        fn literal_parser_survives_any_unicode(s in "\\PC{0,40}") {
            let _ = parse_literal(&s);
            let _ = inline_models(&format!("models:{s}"));
        }
    }
}
