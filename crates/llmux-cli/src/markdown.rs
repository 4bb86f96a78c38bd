//! Markdown for the terminal: once an answer has streamed in as raw text, a TTY gets it again
//! rendered (headings, emphasis, lists, quotes, links, code blocks with light syntax
//! highlighting). Built on `pulldown-cmark`; the highlighter is a small keyword/string/comment
//! colouriser, which keeps the build lean (no grammar bundle).

use std::fmt::Write as _;
use std::io::Write as _;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use unicode_width::UnicodeWidthChar;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const ITALIC: &str = "\x1b[3m";
const UNDERLINE: &str = "\x1b[4m";
const CODE: &str = "\x1b[36m";
const KEYWORD: &str = "\x1b[35m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[33m";
const COMMENT: &str = "\x1b[90m";

/// Renders `md` with ANSI styles for a terminal `width` columns wide.
pub(crate) fn render(md: &str, width: usize) -> String {
    let mut r = Render::default();
    let opts = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for ev in Parser::new_ext(md, opts) {
        r.event(ev, width);
    }
    let out = r.out.trim_end_matches('\n');
    format!("{out}{RESET}\n")
}

#[derive(Default)]
struct Render {
    out: String,
    /// Active styles, innermost last.
    styles: Vec<&'static str>,
    /// Lists: `Some(next number)` for ordered ones.
    lists: Vec<Option<u64>>,
    /// Inside a code block: its language and text so far.
    code: Option<(String, String)>,
    /// Link destinations, innermost last.
    links: Vec<String>,
    quote: usize,
}

impl Render {
    fn push(&mut self, style: &'static str) {
        self.styles.push(style);
        self.out.push_str(style);
    }

    fn pop(&mut self) {
        self.styles.pop();
        self.out.push_str(RESET);
        for s in &self.styles {
            self.out.push_str(s);
        }
    }

    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn blank_line(&mut self) {
        self.newline();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn quote_prefix(&mut self) {
        for _ in 0..self.quote {
            let _ = write!(self.out, "{DIM}│{RESET} ");
        }
        for s in &self.styles {
            self.out.push_str(s);
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => {
                self.blank_line();
                self.quote_prefix();
                self.push(BOLD);
                if level == HeadingLevel::H1 {
                    self.push(UNDERLINE);
                }
            }
            Tag::Paragraph if self.lists.is_empty() => {
                self.blank_line();
                self.quote_prefix();
            }
            Tag::BlockQuote(_) => {
                self.blank_line();
                self.quote += 1;
            }
            Tag::CodeBlock(kind) => {
                self.blank_line();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.blank_line();
                } else {
                    self.newline();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.newline();
                self.quote_prefix();
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"  ".repeat(depth));
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "• ".to_owned(),
                };
                self.out.push_str(&marker);
            }
            Tag::Emphasis => self.push(ITALIC),
            Tag::Strong => self.push(BOLD),
            Tag::Strikethrough => self.push("\x1b[9m"),
            Tag::Link { dest_url, .. } => {
                self.links.push(dest_url.into_string());
                self.push(UNDERLINE);
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(level) => {
                if level == HeadingLevel::H1 {
                    self.pop();
                }
                self.pop();
                self.blank_line();
            }
            TagEnd::Paragraph => {
                if self.lists.is_empty() {
                    self.blank_line();
                } else {
                    self.newline();
                }
            }
            TagEnd::BlockQuote(_) => {
                self.quote = self.quote.saturating_sub(1);
                self.blank_line();
            }
            TagEnd::CodeBlock => {
                if let Some((lang, text)) = self.code.take() {
                    self.out.push_str(&highlight(&text, &lang));
                    self.blank_line();
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank_line();
                }
            }
            TagEnd::Item => self.newline(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.pop(),
            TagEnd::Link => {
                self.pop();
                if let Some(url) = self.links.pop().filter(|u| !u.is_empty()) {
                    let _ = write!(self.out, " {DIM}({url}){RESET}");
                    for s in &self.styles {
                        self.out.push_str(s);
                    }
                }
            }
            _ => {}
        }
    }

    fn event(&mut self, ev: Event<'_>, width: usize) {
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => match &mut self.code {
                Some((_, buf)) => buf.push_str(&t),
                None => self.text(&t),
            },
            Event::Code(c) => {
                let _ = write!(self.out, "{CODE}{c}{RESET}");
                for s in &self.styles {
                    self.out.push_str(s);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                self.out.push('\n');
                self.quote_prefix();
            }
            Event::Rule => {
                self.blank_line();
                let _ = write!(self.out, "{DIM}{}{RESET}", "─".repeat(width.clamp(3, 60)));
                self.blank_line();
            }
            Event::Html(h) | Event::InlineHtml(h) => self.out.push_str(&h),
            Event::TaskListMarker(done) => self.out.push_str(if done { "[x] " } else { "[ ] " }),
            _ => {}
        }
    }

    fn text(&mut self, t: &str) {
        let mut lines = t.split('\n');
        if let Some(first) = lines.next() {
            self.out.push_str(first);
        }
        for l in lines {
            self.out.push('\n');
            self.quote_prefix();
            self.out.push_str(l);
        }
    }
}

const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "do",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "finally",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "let",
    "loop",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "None",
    "null",
    "package",
    "pub",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "switch",
    "then",
    "this",
    "throw",
    "trait",
    "True",
    "False",
    "true",
    "try",
    "type",
    "use",
    "var",
    "where",
    "while",
    "with",
    "yield",
    "echo",
    "fi",
    "done",
    "esac",
];

/// Line comment marker of a language.
fn comment_marker(lang: &str) -> Option<&'static str> {
    match lang.to_ascii_lowercase().as_str() {
        "python" | "py" | "sh" | "bash" | "shell" | "zsh" | "ruby" | "rb" | "toml" | "yaml"
        | "yml" | "perl" | "r" | "dockerfile" | "make" | "makefile" => Some("#"),
        "sql" | "lua" | "haskell" | "hs" => Some("--"),
        "" | "text" | "txt" | "plain" | "markdown" | "md" | "json" => None,
        _ => Some("//"),
    }
}

/// Colours keywords, strings, numbers and line comments of code in `lang` (none for plain
/// text).
pub(crate) fn highlight(code: &str, lang: &str) -> String {
    let plain = matches!(
        lang.to_ascii_lowercase().as_str(),
        "" | "text" | "txt" | "plain"
    );
    if plain {
        return code.to_owned();
    }
    let comment = comment_marker(lang);
    let mut out = String::with_capacity(code.len() * 2);
    for (i, line) in code.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        highlight_line(line, comment, &mut out);
    }
    out
}

fn highlight_line(line: &str, comment: Option<&str>, out: &mut String) {
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(m) = comment.filter(|m| rest.starts_with(m)) {
            let _ = m;
            let _ = write!(out, "{COMMENT}{rest}{RESET}");
            return;
        }
        let c = rest.chars().next().unwrap_or(' ');
        let len = if c == '"' || c == '\'' || c == '`' {
            let end = rest[1..].find(c).map_or(rest.len(), |i| i + 2);
            let _ = write!(out, "{STRING}{}{RESET}", &rest[..end]);
            end
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_'))
                .unwrap_or(rest.len());
            let _ = write!(out, "{NUMBER}{}{RESET}", &rest[..end]);
            end
        } else if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            if KEYWORDS.contains(&word) {
                let _ = write!(out, "{KEYWORD}{word}{RESET}");
            } else {
                out.push_str(word);
            }
            end
        } else {
            out.push(c);
            c.len_utf8()
        };
        rest = &rest[len..];
    }
}

/// Terminal rows `text` took when printed raw at `cols` columns (wrapping, tabs, wide
/// characters).
pub(crate) fn rows_of(text: &str, cols: usize) -> usize {
    let cols = cols.max(1);
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|line| {
            let mut w = 0usize;
            for ch in line.chars() {
                w = match ch {
                    '\t' => (w / 8 + 1) * 8,
                    '\r' => 0,
                    c => w + c.width().unwrap_or(0),
                };
            }
            w.div_ceil(cols).max(1)
        })
        .sum()
}

/// Replaces the raw answer just printed on the terminal (the cursor is on the line after it)
/// by its rendering. When the raw text scrolled off the screen it cannot be erased, and stays.
pub(crate) fn rerender(text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let (cols, lines) = match terminal_size::terminal_size() {
        Some((terminal_size::Width(w), terminal_size::Height(h))) if w > 0 && h > 0 => {
            (usize::from(w), usize::from(h))
        }
        _ => (80, 24),
    };
    let rows = rows_of(text, cols);
    if rows + 1 >= lines {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\x1b[{rows}A\r\x1b[J{}", render(text, cols));
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn renders_blocks() {
        let md = "# Title\n\nSome **bold** and `code`.\n\n- one\n- two\n  1. nested\n\n```rust\nfn main() { let x = \"s\"; } // c\n```\n\n> quoted\n\n[site](https://e.x)\n";
        let out = render(md, 80);
        assert!(out.contains(&format!("{BOLD}{UNDERLINE}Title")), "{out:?}");
        assert!(out.contains(&format!("{KEYWORD}fn{RESET}")), "{out:?}");
        assert!(out.contains(&format!("{STRING}\"s\"{RESET}")), "{out:?}");
        assert!(out.contains(&format!("{COMMENT}// c{RESET}")), "{out:?}");
        assert_eq!(
            strip(&out),
            "Title\n\nSome bold and code.\n\n• one\n• two\n  1. nested\n\nfn main() { let x = \"s\"; } // c\n\n│ quoted\n\nsite (https://e.x)\n"
        );
    }

    #[test]
    fn counts_rows() {
        assert_eq!(rows_of("abc\n", 80), 1);
        assert_eq!(rows_of("abc\n\ndef", 80), 3);
        assert_eq!(rows_of(&"x".repeat(81), 80), 2);
        assert_eq!(rows_of(&"x".repeat(80), 80), 1);
        assert_eq!(rows_of("漢字", 3), 2);
        assert_eq!(rows_of("\tx", 8), 2);
    }
}
