//! Terminal helpers: TTY detection, dim text, the waiting spinner, tables.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the standard streams are connected to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tty {
    pub stdin: bool,
    pub stderr: bool,
    /// ANSI styles allowed (a TTY and `NO_COLOR` unset).
    pub color: bool,
}

impl Tty {
    pub fn detect() -> Self {
        let stdout = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            stdin: std::io::stdin().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
            color: stdout && !no_color,
        }
    }
}

pub(crate) const DIM: &str = "\x1b[2m";
pub(crate) const RESET: &str = "\x1b[0m";

/// A spinner on stderr until the first token arrives; a no-op when stderr is not a TTY.
pub(crate) struct Spinner {
    task: Option<(JoinHandle<()>, watch::Sender<String>)>,
}

impl Spinner {
    pub fn start(enabled: bool, label: &str) -> Self {
        if !enabled {
            return Self { task: None };
        }
        let (tx, mut rx) = watch::channel(label.to_owned());
        let task = tokio::spawn(async move {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let mut i = 0usize;
            loop {
                let label = rx.borrow_and_update().clone();
                {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[K{} {label}", FRAMES[i % FRAMES.len()]);
                    let _ = err.flush();
                }
                i += 1;
                let _ = tokio::time::timeout(Duration::from_millis(90), rx.changed()).await;
            }
        });
        Self {
            task: Some((task, tx)),
        }
    }

    /// Changes the label (e.g. a reasoning status).
    pub fn set_label(&self, label: &str) {
        if let Some((_, tx)) = &self.task {
            let _ = tx.send(label.to_owned());
        }
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Stops the spinner and clears its line.
    pub async fn stop(&mut self) {
        if let Some((task, _tx)) = self.task.take() {
            task.abort();
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some((task, _)) = self.task.take() {
            task.abort();
            eprint!("\r\x1b[K");
        }
    }
}

/// Renders rows as left-aligned columns separated by two spaces (the last column unpadded).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(cols) {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_alignment() {
        let t = table(
            &["NAME", "X"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long-name".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME       X\na          1\nlong-name  22\n");
    }
}
