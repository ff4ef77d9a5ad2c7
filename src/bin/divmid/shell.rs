//! `divmid shell`: an interactive prompt that runs every command of the client, with tab
//! completion of subcommands, flags and listed values (from the client's own clap
//! definition), and a history kept in the configuration folder beside the profiles.
//!
//! The line editor is rustyline, which works in Unix terminals and Windows consoles alike.
//! Each line is split as a POSIX shell would (shlex) and run as `divmid <line>` with the
//! global options `divmid shell` was started with (`--profile`, `--server`, `--output`);
//! an error is printed and the prompt comes back. Ctrl-C stops a running command (a
//! followed stream, say) and returns to the prompt; Ctrl-D or `exit` leaves.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::cli::Arguments;

/// Lines the history keeps.
const HISTORY_LINES_MAX: usize = 1_000;

/// Completion from the client's clap definition.
struct Completion {
    command: clap::Command,
}

impl Completion {
    fn new() -> Completion {
        let mut command = Arguments::command();
        // Global flags are propagated to every subcommand by a build.
        command.build();
        Completion { command }
    }

    /// The candidates for `current`, the word being typed after `words`.
    fn candidates(&self, words: &[String], current: &str) -> Vec<String> {
        let mut command = &self.command;
        let mut value_of: Option<&clap::Arg> = None;
        for word in words {
            if value_of.take().is_some() {
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                value_of = command
                    .get_arguments()
                    .find(|arg| arg.get_long() == Some(long))
                    .filter(|arg| arg.get_action().takes_values());
            } else if let Some(sub) = command.find_subcommand(word) {
                command = sub;
            }
        }
        let names: Vec<String> = match value_of {
            Some(arg) => arg
                .get_possible_values()
                .iter()
                .map(|value| value.get_name().to_string())
                .collect(),
            None if current.starts_with('-') => command
                .get_arguments()
                .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
                .collect(),
            None => {
                let mut names: Vec<String> = command
                    .get_subcommands()
                    .map(|sub| sub.get_name().to_string())
                    .collect();
                if words.is_empty() {
                    names.push("exit".to_string());
                }
                names
            }
        };
        names
            .into_iter()
            .filter(|name| name.starts_with(current))
            .map(|name| name + " ")
            .collect()
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        position: usize,
        _context: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..position];
        let start = before
            .rfind(char::is_whitespace)
            .map_or(0, |index| index + 1);
        let words: Vec<String> = before[..start]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok((start, self.candidates(&words, &before[start..])))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {}

impl Validator for Completion {}

impl Helper for Completion {}

/// Where the history is kept: beside the profiles.
fn history_path() -> Option<PathBuf> {
    crate::profile::directory()
        .ok()
        .map(|directory| directory.join("history"))
}

/// Creates the history file mode 0600 before anything is written to it: a line may hold
/// an account id or a client order id a user keeps to themselves.
fn prepare_history(path: &std::path::Path) {
    if let Some(directory) = path.parent() {
        let _ = std::fs::create_dir_all(directory);
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// Runs the prompt until `exit` or end of input. `globals` are the options `divmid shell`
/// was given, passed to every line.
pub fn run(runtime: &tokio::runtime::Runtime, globals: Vec<String>) -> Result<(), String> {
    let config = rustyline::Config::builder()
        .max_history_size(HISTORY_LINES_MAX)
        .map_err(|error| error.to_string())?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<Completion, DefaultHistory> =
        Editor::with_config(config).map_err(|error| format!("the terminal: {error}"))?;
    editor.set_helper(Some(Completion::new()));
    let history = history_path();
    if let Some(path) = &history {
        prepare_history(path);
        // A history that does not exist yet or cannot be read starts empty.
        let _ = editor.load_history(path);
    }
    println!("divmid shell: every divmid command, without `divmid`; Tab completes, `exit` leaves");
    loop {
        let line = match editor.readline("divmid> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(format!("the terminal: {error}")),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(line, "exit" | "quit") {
            break;
        }
        // A token typed on the line is not kept in the history file.
        if !line.contains("--token") {
            let _ = editor.add_history_entry(line);
        }
        run_line(runtime, &globals, line);
    }
    if let Some(path) = &history {
        editor
            .save_history(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(())
}

/// Runs one line as a command, printing what goes wrong.
fn run_line(runtime: &tokio::runtime::Runtime, globals: &[String], line: &str) {
    let Some(words) = shlex::split(line) else {
        eprintln!("divmid: unbalanced quotes");
        return;
    };
    let argv = std::iter::once("divmid".to_string())
        .chain(globals.iter().cloned())
        .chain(words);
    let arguments = match Arguments::try_parse_from(argv) {
        Ok(arguments) => arguments,
        Err(error) => {
            // clap's own message: usage, or the help asked for.
            let _ = error.print();
            return;
        }
    };
    if matches!(arguments.command, crate::cli::Top::Shell) {
        eprintln!("divmid: already in the shell");
        return;
    }
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = crate::run(arguments) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    if let Err(message) = outcome {
        eprintln!("divmid: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn subcommands_flags_and_values_complete() {
        let completion = Completion::new();
        assert_eq!(completion.candidates(&[], "mar"), vec!["market "]);
        assert_eq!(completion.candidates(&words("market"), "li"), vec!["list "]);
        assert!(completion
            .candidates(&words("order place"), "--si")
            .contains(&"--side ".to_string()));
        assert_eq!(
            completion.candidates(&words("order place --side"), ""),
            vec!["buy ", "sell "]
        );
        assert!(
            completion
                .candidates(&words("wallet"), "--pro")
                .contains(&"--profile ".to_string()),
            "global flags everywhere"
        );
    }
}
