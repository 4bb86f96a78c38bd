//! The interactive `llmux chat` session on a terminal: line editing and history (`rustyline`,
//! history in `<data dir>/llmux/history.txt`), multi-line input (pasting keeps newlines;
//! Alt-Enter inserts one), slash commands with completion of commands, model and provider
//! names, Ctrl-C to stop a running answer (the upstream request is dropped, the session goes
//! on) and Ctrl-D to leave.

use std::path::{Path, PathBuf};

use llmux::Media;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Cmd, CompletionType, Config, Editor, EventHandler, KeyCode, KeyEvent, Modifiers};

use crate::chat::{ConversationFile, Session, attachment, ctrl_c, end_aborted_line};
use crate::exit::{self, CliError};

/// The commands, with their help lines.
const COMMANDS: &[(&str, &str)] = &[
    (
        "/model",
        "/model NAME        switch model (`provider:model` or an alias)",
    ),
    (
        "/provider",
        "/provider NAME     switch provider (`auto` routes by model)",
    ),
    (
        "/system",
        "/system TEXT       set the system prompt (empty clears it)",
    ),
    (
        "/image",
        "/image PATH        attach an image to the next message",
    ),
    (
        "/audio",
        "/audio PATH        attach an audio file to the next message",
    ),
    ("/save", "/save FILE         write the conversation as JSON"),
    ("/load", "/load FILE         continue a saved conversation"),
    ("/reset", "/reset             start a new conversation"),
    ("/help", "/help              show this help"),
    ("/exit", "/exit              leave (or Ctrl-D)"),
];

fn help() -> String {
    let mut s = String::from(
        "Enter sends, Alt-Enter adds a line, Ctrl-C stops an answer, Ctrl-D leaves. Commands:\n",
    );
    for (_, line) in COMMANDS {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Completion of commands and of model / provider names.
struct ReplHelper {
    models: Vec<String>,
    providers: Vec<String>,
}

fn candidates<'a>(words: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<Pair> {
    words
        .into_iter()
        .filter(|w| w.starts_with(prefix))
        .map(|w| Pair {
            display: w.to_owned(),
            replacement: w.to_owned(),
        })
        .collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        match head.split_once(' ') {
            None if head.starts_with('/') => {
                Ok((0, candidates(COMMANDS.iter().map(|(c, _)| *c), head)))
            }
            Some(("/model", arg)) => Ok((
                "/model ".len(),
                candidates(self.models.iter().map(String::as_str), arg.trim_start()),
            )),
            Some(("/provider", arg)) => Ok((
                "/provider ".len(),
                candidates(self.providers.iter().map(String::as_str), arg.trim_start()),
            )),
            _ => Ok((pos, Vec::new())),
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}
impl Highlighter for ReplHelper {}
impl Validator for ReplHelper {}
impl rustyline::Helper for ReplHelper {}

type Ed = Editor<ReplHelper, FileHistory>;

/// `<data dir>/llmux/history.txt`.
fn history_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("llmux").join("history.txt"))
}

fn editor(session: &Session<'_>) -> Result<Ed, CliError> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(1000))
        .map_err(|e| CliError::new(exit::FAILURE, format!("line editor: {e}")))?
        .bracketed_paste(true)
        .completion_type(CompletionType::List)
        .build();
    let mut ed = Ed::with_config(config)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot start the line editor: {e}")))?;
    ed.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        EventHandler::Simple(Cmd::Newline),
    );
    let providers = session.client.providers();
    let mut models: Vec<String> = providers
        .iter()
        .flat_map(|l| l.info.all_models())
        .chain(session.app.settings.file.aliases.keys().cloned())
        .collect();
    models.sort();
    models.dedup();
    let mut names: Vec<String> = providers.iter().map(|l| l.info.name.clone()).collect();
    names.push("auto".into());
    ed.set_helper(Some(ReplHelper {
        models,
        providers: names,
    }));
    if let Some(p) = history_path() {
        let _ = ed.load_history(&p);
    }
    Ok(ed)
}

fn remember(ed: &mut Ed, line: &str) {
    let _ = ed.add_history_entry(line);
    if let Some(p) = history_path() {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // a history that cannot be written only loses history
        let _ = ed.save_history(&p);
    }
}

/// What to do after a command.
enum Flow {
    Continue,
    Exit,
}

fn target(session: &Session<'_>) -> String {
    match (&session.provider, session.model.as_str()) {
        (Some(p), "") => p.clone(),
        (Some(p), m) => format!("{p}:{m}"),
        (None, "") => "the default model".to_owned(),
        (None, m) => m.to_owned(),
    }
}

/// Runs one slash command.
fn command(
    session: &mut Session<'_>,
    input: &str,
    media: &mut Vec<Media>,
) -> Result<Flow, CliError> {
    let (cmd, arg) = input.split_once(char::is_whitespace).unwrap_or((input, ""));
    let arg = arg.trim();
    let need = |what: &str| {
        if arg.is_empty() {
            Err(CliError::usage(format!("{cmd} needs {what}")))
        } else {
            Ok(())
        }
    };
    match cmd {
        "/exit" | "/quit" | "/q" => return Ok(Flow::Exit),
        "/help" | "/?" => eprint!("{}", help()),
        "/reset" | "/new" => {
            session.reset();
            media.clear();
            session.save()?;
            eprintln!("(new conversation)");
        }
        "/model" => {
            need("a model name")?;
            arg.clone_into(&mut session.model);
            if !session.pinned {
                session.provider = None;
            }
            eprintln!("(model: {})", target(session));
        }
        "/provider" => {
            need("a provider name, or `auto`")?;
            if arg == "auto" {
                session.provider = None;
                session.pinned = false;
            } else {
                session.provider = Some(arg.to_owned());
                session.pinned = true;
                session.model.clear();
            }
            eprintln!("(provider: {})", target(session));
        }
        "/system" => {
            session.system = Some(arg.to_owned()).filter(|s| !s.is_empty());
            eprintln!(
                "(system prompt {})",
                if arg.is_empty() { "cleared" } else { "set" }
            );
        }
        "/image" | "/audio" => {
            need("a file path")?;
            media.push(attachment(Path::new(arg))?);
            eprintln!("(attached {arg} to the next message)");
        }
        "/save" => {
            need("a file name")?;
            session.snapshot().save(Path::new(arg))?;
            eprintln!("(saved {} messages to {arg})", session.history.len());
        }
        "/load" => {
            need("a file name")?;
            let f = ConversationFile::load(Path::new(arg))?
                .ok_or_else(|| CliError::usage(format!("{arg}: no such conversation file")))?;
            load(session, f);
            eprintln!(
                "(loaded {} messages; {})",
                session.history.len(),
                target(session)
            );
        }
        other => {
            return Err(CliError::usage(format!(
                "unknown command {other}; /help lists them"
            )));
        }
    }
    Ok(Flow::Continue)
}

fn load(session: &mut Session<'_>, f: ConversationFile) {
    session.history = f.messages;
    session.conversation = f.conversation;
    if f.provider.is_some() || f.model.is_some() {
        session.provider = f.provider;
        session.model = f.model.unwrap_or_default();
    }
}

/// Reads one line (on a blocking thread: the editor owns the terminal meanwhile).
async fn read_line(ed: Ed) -> Result<(Ed, rustyline::Result<String>), CliError> {
    tokio::task::spawn_blocking(move || {
        let mut ed = ed;
        let r = ed.readline("> ");
        (ed, r)
    })
    .await
    .map_err(|e| CliError::new(exit::FAILURE, format!("line editor failed: {e}")))
}

/// The interactive session.
pub(crate) async fn run(session: &mut Session<'_>, mut media: Vec<Media>) -> Result<u8, CliError> {
    let earlier = if session.history.is_empty() {
        String::new()
    } else {
        format!(" ({} earlier messages)", session.history.len())
    };
    eprintln!(
        "llmux chat with {}{earlier}; /help lists commands, Ctrl-D leaves",
        target(session)
    );
    let mut ed = editor(session)?;
    loop {
        let (back, line) = read_line(ed).await?;
        ed = back;
        let line = match line {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(exit::OK),
            Err(e) => {
                return Err(CliError::new(
                    exit::FAILURE,
                    format!("cannot read input: {e}"),
                ));
            }
        };
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        remember(&mut ed, input);
        if input.starts_with('/') && !input.contains('\n') {
            match command(session, input, &mut media) {
                Ok(Flow::Exit) => return Ok(exit::OK),
                Ok(Flow::Continue) => {}
                Err(e) => e.print(false),
            }
            continue;
        }
        let attach = std::mem::take(&mut media);
        let result = tokio::select! {
            r = session.turn(input, attach) => r,
            () = ctrl_c() => {
                end_aborted_line(session.app.tty);
                eprintln!("(cancelled)");
                Ok(())
            }
        };
        if let Err(e) = result {
            e.print(session.app.verbose > 0);
        }
    }
}
