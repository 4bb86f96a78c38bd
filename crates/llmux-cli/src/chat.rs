//! `llmux chat`: one question (streamed), or an interactive session.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use llmux::{
    Accumulator, ChatRequest, ChatResponse, Chunk, Client, Conversation, Media, MediaData, Message,
    Role,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::exit::{self, CliError};
use crate::term::{DIM, RESET, Spinner, Tty};
use crate::{App, media};

/// Largest prompt read from stdin.
const MAX_STDIN_PROMPT: u64 = 16 * 1024 * 1024;

#[derive(Args, Debug, Clone)]
pub(crate) struct ChatArgs {
    /// Model id, alias or `provider:model` [default: `chat.model` of the config, else routing].
    #[arg(short, long)]
    model: Option<String>,
    /// Provider to use (llmux or g4f name) [default: chosen by model].
    #[arg(short, long)]
    provider: Option<String>,
    /// System prompt.
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Attach an image file (repeatable).
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<PathBuf>,
    /// Attach an audio file.
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,
    /// Ask the upstream for a single, non-streamed answer.
    #[arg(long)]
    no_stream: bool,
    /// Print the whole response as JSON (for scripts) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Conversation file: loaded if it exists, written back after each answer.
    #[arg(long, value_name = "FILE")]
    conversation: Option<PathBuf>,
    /// Time limit of the whole answer, in seconds [default: `timeouts.total`, 600].
    #[arg(long, value_name = "SECS", env = "LLMUX_TIMEOUT", hide_env_values = true, value_parser = crate::parse_secs)]
    timeout: Option<Duration>,
    /// Longest silence between two chunks, in seconds [default: `timeouts.idle`, 60].
    #[arg(long, value_name = "SECS", env = "LLMUX_IDLE_TIMEOUT", hide_env_values = true, value_parser = crate::parse_secs)]
    idle_timeout: Option<Duration>,
    /// Sampling temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Maximum new tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Offer these tools: a JSON array of OpenAI function tools; each tool call the model makes
    /// is printed to stdout as one JSON line `{"id","name","arguments"}`.
    #[arg(long, value_name = "FILE.json")]
    tools: Option<PathBuf>,
    /// Which tools the model may call: auto, required, none or a function name.
    #[arg(long, value_name = "CHOICE", value_parser = crate::tools::parse_tool_choice)]
    tool_choice: Option<llmux::ToolChoice>,
    /// Ask for JSON that follows this schema (a JSON Schema, or `{"name","schema","strict"}`).
    #[arg(long, value_name = "FILE.json")]
    json_schema: Option<PathBuf>,
    /// Emulate tools / structured output with a prompt on providers that lack them.
    #[arg(long)]
    tool_emulation: bool,
    /// Where generated images and audio are saved [default: `chat.output_dir`, else `.`].
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// The prompt (words are joined); `-` reads it from stdin. Without a prompt: stdin when it
    /// is piped, else an interactive session.
    #[arg(value_name = "PROMPT")]
    prompt: Vec<String>,
}

/// The conversation file: history plus the providers' conversation state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ConversationFile {
    /// Format version.
    pub(crate) version: u32,
    /// Provider that answered last (reused when neither `-p` nor `-m` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    /// Model that answered last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    /// The messages so far.
    pub(crate) messages: Vec<Message>,
    /// Provider conversation state, keyed by provider name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) conversation: Option<Conversation>,
}

impl ConversationFile {
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CliError::usage(format!(
                    "cannot read conversation file {}: {e}",
                    path.display()
                )));
            }
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::usage(format!(
                "conversation file {} is not valid: {e}",
                path.display()
            ))
        })
    }

    /// Writes atomically (temporary file + rename), readable only by the user on Unix.
    pub(crate) fn save(&self, path: &Path) -> Result<(), CliError> {
        let fail = |e: std::io::Error| {
            CliError::new(
                exit::FAILURE,
                format!("cannot write conversation file {}: {e}", path.display()),
            )
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| {
            CliError::new(exit::FAILURE, format!("cannot encode conversation: {e}"))
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "conversation".into());
        let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let result = opts
            .open(&tmp)
            .and_then(|mut f| f.write_all(&json).and_then(|()| f.write_all(b"\n")))
            .and_then(|()| std::fs::rename(&tmp, path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(fail)
    }
}

/// Prints chunks as they arrive.
struct Renderer {
    json: bool,
    verbose: bool,
    spinner: Spinner,
    /// Reasoning is being printed (and not yet closed by text).
    reasoning_open: bool,
    /// Where reasoning goes: stdout (dim) or stderr.
    reasoning_to_stdout: bool,
    /// The last byte written to stdout, to end with a newline.
    stdout_last: Option<u8>,
    reasoning_last: Option<u8>,
}

impl Renderer {
    fn new(tty: Tty, json: bool, verbose: bool) -> Self {
        Self {
            json,
            verbose,
            spinner: Spinner::start(tty.stderr, "waiting for the answer…"),
            reasoning_open: false,
            reasoning_to_stdout: tty.color,
            stdout_last: None,
            reasoning_last: None,
        }
    }

    fn out(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
        self.stdout_last = s.as_bytes().last().copied();
    }

    /// A line on stderr that does not collide with the spinner.
    fn note(&self, s: &str) {
        if self.spinner.is_running() {
            eprint!("\r\x1b[K");
        }
        eprintln!("{s}");
    }

    fn close_reasoning(&mut self) {
        if !self.reasoning_open {
            return;
        }
        self.reasoning_open = false;
        if self.reasoning_to_stdout {
            self.out(&format!("{RESET}\n\n"));
        } else if self.reasoning_last != Some(b'\n') {
            eprintln!();
        }
    }

    async fn chunk(&mut self, chunk: &Chunk) {
        if chunk.is_content() {
            self.spinner.stop().await;
        }
        match chunk {
            Chunk::Text(t) if !t.is_empty() && !self.json => {
                self.close_reasoning();
                self.out(t);
            }
            Chunk::Reasoning(r) => {
                if let Some(tok) = r.token.as_deref().filter(|t| !t.is_empty()) {
                    if self.json {
                        return;
                    }
                    if self.reasoning_to_stdout {
                        let prefix = if self.reasoning_open { "" } else { DIM };
                        self.out(&format!("{prefix}{tok}"));
                    } else {
                        eprint!("{tok}");
                        self.reasoning_last = tok.as_bytes().last().copied();
                    }
                    self.reasoning_open = true;
                } else if let Some(status) = r.status.as_deref().filter(|s| !s.is_empty()) {
                    if self.spinner.is_running() {
                        self.spinner.set_label(status);
                    } else if self.verbose && !self.reasoning_open {
                        self.note(&format!("llmux: [{status}]"));
                    }
                }
            }
            Chunk::Provider(p) => {
                self.spinner
                    .set_label(&format!("asking {} ({})…", p.provider, p.model));
                if self.verbose {
                    let model = if p.model.is_empty() {
                        "(default)"
                    } else {
                        p.model.as_str()
                    };
                    self.note(&format!("llmux: provider {} model {model}", p.provider));
                }
            }
            Chunk::LoginRequired { label, url } => {
                self.note(&format!("llmux: log in to {label}: {url}"));
            }
            _ => {}
        }
    }

    /// Ends the streamed text (closing reasoning, adding a final newline).
    async fn end_stream(&mut self) {
        self.spinner.stop().await;
        self.close_reasoning();
        if self.stdout_last.is_some_and(|b| b != b'\n') {
            self.out("\n");
        }
    }

    /// Prints what follows the text: sources, saved files, title; or the JSON document.
    fn summary(&mut self, resp: &ChatResponse, files: &[PathBuf]) -> Result<(), CliError> {
        if self.json {
            #[derive(Serialize)]
            struct JsonOut<'a> {
                #[serde(flatten)]
                response: &'a ChatResponse,
                files: Vec<String>,
            }
            let doc = JsonOut {
                response: resp,
                files: files.iter().map(|f| f.display().to_string()).collect(),
            };
            let text = serde_json::to_string_pretty(&doc).map_err(|e| {
                CliError::new(exit::FAILURE, format!("cannot encode the response: {e}"))
            })?;
            self.out(&format!("{text}\n"));
            return Ok(());
        }
        let mut tail = String::new();
        if !resp.sources.is_empty() {
            tail.push_str("\nSources:\n");
            for (i, s) in resp.sources.iter().enumerate() {
                if s.title.is_empty() {
                    tail.push_str(&format!("[{}] {}\n", i + 1, s.url));
                } else {
                    tail.push_str(&format!("[{}] {} — {}\n", i + 1, s.title, s.url));
                }
            }
        }
        for f in files {
            tail.push_str(&format!("saved: {}\n", f.display()));
        }
        self.out(&tail);
        if let Some(t) = resp.title.as_deref().filter(|t| !t.is_empty()) {
            eprintln!("Title: {t}");
        }
        if self.verbose {
            if let Some(u) = &resp.usage {
                eprintln!(
                    "llmux: {} answered with {}; tokens: {} prompt, {} completion",
                    resp.provider, resp.model, u.prompt_tokens, u.completion_tokens
                );
            } else {
                eprintln!("llmux: {} answered with {}", resp.provider, resp.model);
            }
        }
        Ok(())
    }
}

/// Chat state across turns.
pub(crate) struct Session<'a> {
    pub(crate) app: &'a App,
    pub(crate) client: Client,
    pub(crate) args: &'a ChatArgs,
    /// Provider and model for the next turn.
    pub(crate) provider: Option<String>,
    pub(crate) model: String,
    /// Provider/model pinned by flags (or config); otherwise the answering one is kept.
    pub(crate) pinned: bool,
    pub(crate) initial: (Option<String>, String),
    pub(crate) system: Option<String>,
    pub(crate) history: Vec<Message>,
    pub(crate) conversation: Option<Conversation>,
    pub(crate) output_dir: PathBuf,
    /// `--tools` and `--json-schema`, read once.
    pub(crate) tools: Vec<llmux::Tool>,
    pub(crate) response_format: Option<llmux::ResponseFormat>,
}

impl Session<'_> {
    fn messages_for(&self, prompt: &str) -> Vec<Message> {
        let mut msgs: Vec<Message> = Vec::new();
        if let Some(s) = &self.system {
            msgs.push(Message::system(s.as_str()));
        }
        msgs.extend(
            self.history
                .iter()
                .filter(|m| !(self.system.is_some() && m.role == Role::System))
                .cloned(),
        );
        msgs.push(Message::user(prompt));
        msgs
    }

    fn request(&self, prompt: &str, attachments: Vec<Media>) -> ChatRequest {
        let mut req = ChatRequest::new(self.model.clone(), self.messages_for(prompt))
            .with_stream(!self.args.no_stream);
        req.provider = self.provider.clone();
        req.media = attachments;
        req.conversation = self.conversation.clone();
        req.timeout = self.args.timeout;
        req.idle_timeout = self.args.idle_timeout;
        req.temperature = self.args.temperature;
        req.max_tokens = self.args.max_tokens;
        req.tools = self.tools.clone();
        req.tool_choice = self.args.tool_choice.clone();
        req.response_format = self.response_format.clone();
        if self.args.tool_emulation {
            req.tool_emulation = Some(true);
        }
        req
    }

    /// One question and its answer, printed as it streams.
    pub(crate) async fn turn(
        &mut self,
        prompt: &str,
        attachments: Vec<Media>,
    ) -> Result<(), CliError> {
        let req = self.request(prompt, attachments);
        let mut renderer = Renderer::new(self.app.tty, self.args.json, self.app.verbose > 0);
        let mut stream = self.client.chat(req);
        let mut acc = Accumulator::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    renderer.chunk(&chunk).await;
                    acc.push(&chunk);
                }
                Err(e) => {
                    renderer.end_stream().await;
                    return Err(e.into());
                }
            }
        }
        renderer.end_stream().await;
        let resp = acc.finish();
        if self.app.tty.color && !self.args.json {
            crate::markdown::rerender(&resp.text);
        }
        if !self.args.json {
            crate::tools::print_calls(&resp.tool_calls);
        }
        let files = save_outputs(&self.client, &resp, &self.output_dir, prompt).await;
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                renderer.summary(&resp, &[])?;
                return Err(e);
            }
        };
        renderer.summary(&resp, &files)?;

        // remember the turn
        if let Some(s) = &self.system {
            self.history.retain(|m| m.role != Role::System);
            self.history.insert(0, Message::system(s.as_str()));
        }
        self.history.push(Message::user(prompt));
        if !resp.text.is_empty() {
            self.history.push(Message::assistant(resp.text.as_str()));
        }
        if resp.conversation.is_some() {
            self.conversation = resp.conversation.clone();
        }
        if !self.pinned && !resp.provider.is_empty() {
            self.provider = Some(resp.provider.clone());
            self.model = resp.model.clone();
        }
        self.save()
    }

    pub(crate) fn save(&self) -> Result<(), CliError> {
        let Some(path) = &self.args.conversation else {
            return Ok(());
        };
        self.snapshot().save(path)
    }

    /// The session as a conversation file.
    pub(crate) fn snapshot(&self) -> ConversationFile {
        ConversationFile {
            version: 1,
            provider: self.provider.clone(),
            model: Some(self.model.clone()).filter(|m| !m.is_empty()),
            messages: self.history.clone(),
            conversation: self.conversation.clone(),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.history.clear();
        self.conversation = None;
        (self.provider, self.model) = self.initial.clone();
    }
}

/// Saves generated images and audio; returns their paths.
async fn save_outputs(
    client: &Client,
    resp: &ChatResponse,
    dir: &Path,
    prompt: &str,
) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    let items = resp
        .images
        .iter()
        .map(|i| {
            (
                &i.data,
                if i.alt.is_empty() {
                    prompt
                } else {
                    i.alt.as_str()
                },
            )
        })
        .chain(resp.audio.iter().map(|a: &MediaData| (a, prompt)));
    for (data, name) in items {
        let (mime, bytes) = media::fetch(client, &resp.provider, data).await?;
        files.push(media::save_in(dir, name, &mime, &bytes).await?);
    }
    Ok(files)
}

/// Reads the whole of stdin (bounded).
async fn read_stdin() -> Result<String, CliError> {
    let mut buf = String::new();
    tokio::io::stdin()
        .take(MAX_STDIN_PROMPT + 1)
        .read_to_string(&mut buf)
        .await
        .map_err(|e| CliError::usage(format!("cannot read the prompt from stdin: {e}")))?;
    if buf.len() as u64 > MAX_STDIN_PROMPT {
        return Err(CliError::usage("the prompt on stdin is larger than 16 MiB"));
    }
    Ok(buf)
}

fn attachments(args: &ChatArgs) -> Result<Vec<Media>, CliError> {
    args.images
        .iter()
        .chain(&args.audio)
        .map(|p| attachment(p))
        .collect()
}

/// Reads an image or audio file to attach.
pub(crate) fn attachment(path: &Path) -> Result<Media, CliError> {
    let m = Media::from_path(path).map_err(|e| CliError::usage(e.to_string()))?;
    llmux::core::media::classify_media(&m)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    Ok(m)
}

fn interrupted() -> CliError {
    CliError::new(exit::INTERRUPTED, "interrupted")
}

/// Runs `llmux chat`.
pub(crate) async fn run(app: &App, args: ChatArgs) -> Result<u8, CliError> {
    let client = app.client()?;
    let chat_cfg = &app.settings.file.chat;
    let media = attachments(&args)?;
    let loaded = match &args.conversation {
        Some(p) => ConversationFile::load(p)?,
        None => None,
    };

    let flag_model = args.model.clone().or_else(|| chat_cfg.model.clone());
    let flag_provider = args.provider.clone().or_else(|| chat_cfg.provider.clone());
    let pinned = flag_model.is_some() || flag_provider.is_some();
    let initial = (
        flag_provider.clone(),
        flag_model.clone().unwrap_or_default(),
    );
    let (provider, model) = match (&loaded, pinned) {
        (Some(f), false) if f.provider.is_some() => {
            (f.provider.clone(), f.model.clone().unwrap_or_default())
        }
        _ => initial.clone(),
    };
    let mut session = Session {
        app,
        client,
        args: &args,
        provider,
        model,
        pinned: args.provider.is_some() || chat_cfg.provider.is_some(),
        initial,
        system: args.system.clone().or_else(|| chat_cfg.system.clone()),
        history: loaded
            .as_ref()
            .map(|f| f.messages.clone())
            .unwrap_or_default(),
        conversation: loaded.and_then(|f| f.conversation),
        output_dir: args
            .output_dir
            .clone()
            .or_else(|| chat_cfg.output_dir())
            .unwrap_or_else(|| PathBuf::from(".")),
        tools: match &args.tools {
            Some(p) => crate::tools::load_tools(p)?,
            None => Vec::new(),
        },
        response_format: args
            .json_schema
            .as_deref()
            .map(crate::tools::load_schema)
            .transpose()?,
    };

    let prompt = if args.prompt.len() == 1 && args.prompt[0] == "-" {
        Some(read_stdin().await?)
    } else if !args.prompt.is_empty() {
        Some(args.prompt.join(" "))
    } else if !app.tty.stdin {
        Some(read_stdin().await?)
    } else {
        None
    };

    match prompt {
        Some(p) => {
            let p = p.trim_end_matches(['\n', '\r']).to_owned();
            if p.trim().is_empty() {
                return Err(CliError::usage("empty prompt"));
            }
            tokio::select! {
                r = session.turn(&p, media) => r.map(|()| exit::OK),
                () = ctrl_c() => {
                    end_aborted_line(app.tty);
                    Err(interrupted())
                }
            }
        }
        None => crate::repl::run(&mut session, media).await,
    }
}

/// Ends a line cut short by Ctrl-C (resetting a dim style).
pub(crate) fn end_aborted_line(tty: Tty) {
    if tty.color {
        print!("{RESET}");
    }
    println!();
}

/// Resolves on Ctrl-C (never, if the handler cannot be installed).
pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("llmux-cli-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("conv.json");
        let f = ConversationFile {
            version: 1,
            provider: Some("p".into()),
            model: Some("m".into()),
            messages: vec![Message::user("hi"), Message::assistant("hello")],
            conversation: Some(Conversation(serde_json::json!({"p": {"id": 1}}))),
        };
        f.save(&path).expect("save");
        let back = ConversationFile::load(&path)
            .expect("load")
            .expect("exists");
        assert_eq!(back.messages, f.messages);
        assert_eq!(back.conversation, f.conversation);
        assert_eq!(back.provider.as_deref(), Some("p"));
        assert!(
            ConversationFile::load(&dir.join("missing.json"))
                .expect("ok")
                .is_none()
        );
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(
            ConversationFile::load(&path).expect_err("bad").code,
            exit::USAGE
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
