//! `llmux keys`: gateway keys for the config file's `[[keys]]` entries.

use std::io::BufRead;

use clap::{Args, Subcommand};

use crate::exit::{self, CliError};

/// `llmux keys`.
#[derive(Args, Debug)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Print the SHA-256 of a gateway key for a `[[keys]]` entry's `sha256`. Reads the key
    /// from standard input (first line) when not given, which keeps it out of shell history.
    Hash {
        /// The key.
        #[arg(value_name = "KEY")]
        key: Option<String>,
    },
    /// Print a new random key and its SHA-256.
    New,
}

/// Runs `llmux keys …`.
pub(crate) fn run(args: KeysArgs) -> Result<u8, CliError> {
    match args.command {
        KeysCommand::Hash { key } => {
            let key = match key {
                Some(k) => k,
                None => read_key()?,
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(CliError::usage(
                    "no key given: pass it as an argument or on standard input",
                ));
            }
            println!("{}", llmux_server::hash_key(key));
        }
        KeysCommand::New => {
            let key = format!("sk-llmux-{}", llmux::core::random::random_alnum(40));
            println!("key    = {key}");
            println!("sha256 = {}", llmux_server::hash_key(&key));
        }
    }
    Ok(exit::OK)
}

fn read_key() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("cannot read the key from standard input: {e}")))?;
    Ok(line)
}
