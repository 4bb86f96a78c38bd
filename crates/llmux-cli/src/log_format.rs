//! A cheaper text log line, byte for byte the one `tracing-subscriber`'s default formatter
//! writes (`Full` format, no target): the timestamp and the plain fields of an event (strings
//! that need no escaping, integers, booleans) are written directly instead of through
//! `core::fmt` and `Debug`; everything else (messages, floats, `Display`/`Debug` values,
//! errors, and every field when ANSI colours are on) goes to the default visitor unchanged.
//! The access log writes one such line per request, so this is on the gateway's hot path.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;

/// RFC 3339 UTC timestamps with microseconds (`2026-12-02T18:30:00.123456Z`), as
/// `tracing_subscriber::fmt::time::SystemTime` writes them, without `core::fmt`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match rfc3339_micros(SystemTime::now()) {
            Some(text) => w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?),
            None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, for the years 1970 to 9999 (`None` outside them).
fn rfc3339_micros(t: SystemTime) -> Option<[u8; 27]> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    if year > 9999 {
        return None;
    }
    let rem = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], rem / 3600);
    digits(&mut out[14..16], rem % 3600 / 60);
    digits(&mut out[17..19], rem % 60);
    digits(&mut out[20..26], u64::from(d.subsec_micros()));
    Some(out)
}

/// Writes `n` as decimal digits right-aligned in `out`, zero-padded (excess digits dropped).
fn digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar; H.
/// Hinnant's `civil_from_days`, unsigned since the count is never negative here).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Field formatting with the default visitor's output, plain fields written directly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            direct: !writer.has_ansi_escapes(),
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.finish()
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    /// No ANSI styling: names and values can be written as they are.
    direct: bool,
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Whether a field can be written here rather than by the default visitor (the message
    /// and raw identifiers are formatted specially there).
    fn plain(&self, field: &Field) -> bool {
        self.direct
            && self.result.is_ok()
            && field.name() != "message"
            && !field.name().starts_with("r#")
    }

    /// Writes ` name=` (no space before the first field) followed by `value`.
    fn write(&mut self, field: &Field, value: &[&str]) {
        let mut r = if self.is_empty {
            Ok(())
        } else {
            self.writer.write_char(' ')
        };
        self.is_empty = false;
        r = r.and_then(|()| self.writer.write_str(field.name()));
        r = r.and_then(|()| self.writer.write_char('='));
        for part in value {
            r = r.and_then(|()| self.writer.write_str(part));
        }
        self.result = r;
    }

    /// Hands one field to the default visitor, which writes it (and its separating space).
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut d = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut d);
        self.result = d.finish();
        self.is_empty = false;
    }
}

/// Whether `Debug` leaves `s` as it is between its quotes (printable ASCII, no `"` or `\`).
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.plain(field) && needs_no_escape(value) {
            self.write(field, &["\"", value, "\""]);
        } else {
            self.delegate(|d| d.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.plain(field) {
            self.write(field, &[itoa::Buffer::new().format(value)]);
        } else {
            self.delegate(|d| d.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.plain(field) {
            self.write(field, &[itoa::Buffer::new().format(value)]);
        } else {
            self.delegate(|d| d.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.plain(field) {
            self.write(field, &[if value { "true" } else { "false" }]);
        } else {
            self.delegate(|d| d.record_bool(field, value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.delegate(|d| d.record_f64(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|d| d.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(|d| d.record_debug(field, value));
    }
}

impl VisitOutput<fmt::Result> for Visitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::prelude::*;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("it \"failed\"\n")
        }
    }
    impl std::error::Error for Failure {}

    /// Events and spans of every field kind, including text that needs escaping.
    fn emit() {
        let strings = [
            "plain",
            "",
            "quote \" here",
            "back\\slash",
            "tab\tnew\nline",
            "é ö 😀",
            "\u{1b}[31mred",
            "~ !#$%&'()*+,-./:;<=>?@[]^_`{|}",
        ];
        let span = tracing::info_span!(
            "request",
            request_id = "req_abc",
            route = tracing::field::Empty,
            status = tracing::field::Empty,
            ttft_ms = tracing::field::Empty,
        );
        let _g = span.enter();
        span.record("route", "/v1/chat/completions");
        span.record("status", 200_i64);
        span.record("ttft_ms", 1.25_f64);
        for s in strings {
            tracing::info!(
                target: "llmux_server::access",
                request_id = s,
                method = %"POST",
                attempts = 3_u32,
                status = 200_u16,
                delta = -4_i64,
                ok = true,
                no = false,
                ttft_ms = Some(0.5_f64),
                none = None::<u64>,
                some = Some(7_u64),
                duration_ms = 12.345_f64,
                big = 1.0e20_f64,
                r#type = s,
                dbg = ?s,
                "request"
            );
            tracing::warn!(
                error = &Failure as &(dyn std::error::Error + 'static),
                "msg {s}"
            );
            tracing::info!(message = s, n = 1_u64);
        }
        let inner = tracing::info_span!("inner", s = "x y", n = 2_u64, f = 0.5_f64);
        let _i = inner.enter();
        tracing::info!(k = "v", "nested");
    }

    /// The log of `emit` through either formatter (timestamps cut off).
    fn run(fast: bool, ansi: bool) -> String {
        let buf = Buf::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_target(false)
            .with_writer(buf.clone());
        let subscriber = tracing_subscriber::registry();
        if fast {
            let layer = layer.fmt_fields(Fields).with_timer(Timestamp);
            tracing::subscriber::with_default(subscriber.with(layer), emit);
        } else {
            tracing::subscriber::with_default(subscriber.with(layer), emit);
        }
        mask_timestamps(&buf.text())
    }

    /// `text` with every timestamp replaced by `TS` (the two runs happen at other times).
    fn mask_timestamps(text: &str) -> String {
        let shape = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
        let fits = |w: &[u8]| {
            w.iter().zip(shape).all(|(b, s)| {
                if *s == b'd' {
                    b.is_ascii_digit()
                } else {
                    b == s
                }
            })
        };
        let (b, mut out, mut i) = (text.as_bytes(), String::new(), 0);
        while i < b.len() {
            if b.len() - i >= shape.len() && fits(&b[i..i + shape.len()]) {
                out.push_str("TS");
                i += shape.len();
            } else {
                let c = text[i..].chars().next().expect("in bounds");
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    #[test]
    fn lines_are_byte_for_byte_the_default_formatters() {
        for ansi in [false, true] {
            let (default, fast) = (run(false, ansi), run(true, ansi));
            assert!(default.contains("req_abc"), "{default}");
            assert!(default.matches("TS").count() > 20, "{default}");
            for (f, d) in fast.lines().zip(default.lines()) {
                assert_eq!(f, d, "ansi = {ansi}");
            }
            assert_eq!(fast, default, "ansi = {ansi}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            String::from_utf8(rfc3339_micros(t).expect("in range").to_vec()).expect("ascii")
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_700_000_000, 123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339_micros(far), None, "year 10000 goes to the default");
        assert_eq!(rfc3339_micros(UNIX_EPOCH - Duration::from_secs(1)), None);
    }

    #[test]
    fn every_day_of_four_centuries_matches_a_day_by_day_count() {
        let (mut y, mut m, mut d) = (1970_u64, 1_u64, 1_u64);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }
}
