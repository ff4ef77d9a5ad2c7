//! Every command of every program says, in its `-h`, what each of its flags is for: a
//! flag listed with nothing but its default or values leaves its user guessing.

use std::process::Command;

/// The programs a user runs, each by the path cargo built it at.
const PROGRAMS: [(&str, &str); 3] = [
    ("divmid", env!("CARGO_BIN_EXE_divmid")),
    ("divmid-server", env!("CARGO_BIN_EXE_divmid-server")),
    ("divmid-load", env!("CARGO_BIN_EXE_divmid-load")),
];

/// The short help of `program` with `words` after it.
fn short_help(program: &str, words: &[String]) -> String {
    let output = Command::new(program)
        .args(words)
        .arg("-h")
        .env_remove("DIVMID_SERVER")
        .env_remove("DIVMID_TOKEN")
        .output()
        .expect("the program runs");
    assert!(output.status.success(), "{words:?} -h: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The subcommands the help lists, `help` left out.
fn subcommands(help: &str) -> Vec<String> {
    let Some((_, listed)) = help.split_once("\nCommands:\n") else {
        return Vec::new();
    };
    listed
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The flags the help lists with no text of their own: nothing after the flag (on its
/// line, or on the next when clap puts every description there), or only what clap adds
/// (`[default: …]`, `[possible values: …]`, `[env: …]`).
fn undocumented(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-') || line.len() - trimmed.len() < 2 {
            continue;
        }
        // The flag and its value name end at the first run of two spaces.
        let (flag, text) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
        let text = match text.trim() {
            "" => lines
                .get(index + 1)
                .map(|next| next.trim())
                .filter(|next| !next.starts_with('-'))
                .unwrap_or(""),
            text => text,
        };
        if text.is_empty() || text.starts_with('[') {
            found.push(flag.trim().to_string());
        }
    }
    found
}

#[test]
fn every_flag_of_every_command_says_what_it_is_for() {
    let mut found = Vec::new();
    let mut commands = 0;
    for (name, program) in PROGRAMS {
        let mut pending: Vec<Vec<String>> = vec![Vec::new()];
        while let Some(words) = pending.pop() {
            let help = short_help(program, &words);
            commands += 1;
            for flag in undocumented(&help) {
                found.push(format!("{name} {} {flag}", words.join(" ")));
            }
            for subcommand in subcommands(&help) {
                let mut deeper = words.clone();
                deeper.push(subcommand);
                pending.push(deeper);
            }
        }
    }
    // The client's groups and their commands, the server's, the load's shapes.
    assert!(commands > 50, "only {commands} commands were read");
    assert!(found.is_empty(), "flags with no help text: {found:#?}");
}

#[test]
fn a_flag_with_only_its_default_is_found() {
    let side_by_side = "Options:\n      --in-flight <IN_FLIGHT>  [default: 64]\n  \
                        -h, --help               Print help\n";
    assert_eq!(undocumented(side_by_side), ["--in-flight <IN_FLIGHT>"]);
    let next_line = "Options:\n      --price <PRICE>\n          USD per DVM\n      \
                     --quantity <QUANTITY>\n\n  -h, --help\n          Print help\n";
    assert_eq!(undocumented(next_line), ["--quantity <QUANTITY>"]);
    let commands = "Usage: divmid-load <COMMAND>\n\nCommands:\n  unary  Calls\n  disk   The disk\n  help   Print\n\nOptions:\n";
    assert_eq!(subcommands(commands), ["unary", "disk"]);
}
