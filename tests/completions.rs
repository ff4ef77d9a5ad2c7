//! `divmid completions SHELL`: each script is non-empty, names every subcommand of the
//! client (read from its own `help`), and is accepted by its shell where that shell is
//! installed: `bash -n`, `zsh -n`, `fish --no-execute`. `.ci/run` installs zsh and fish
//! and sets `DIVMID_REQUIRE_SHELLS=1`, which makes a missing shell a failure; elsewhere a
//! missing shell is reported as not checked, with how to install it. PowerShell (not in
//! Debian's packages) and elvish (whose compile check needs its interactive editor
//! module) are checked for their names only.

use std::process::Command;

fn divmid(arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_divmid"))
        .args(arguments)
        .output()
        .expect("divmid runs");
    assert!(
        output.status.success(),
        "divmid {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The subcommands `divmid <path> --help` lists, but `help` itself.
fn subcommands_of(path: &[&str]) -> Vec<String> {
    let mut arguments = path.to_vec();
    arguments.push("--help");
    let help = divmid(&arguments);
    let Some((_, listed)) = help.split_once("Commands:\n") else {
        return Vec::new();
    };
    listed
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every subcommand, nested ones included.
fn every_subcommand() -> Vec<String> {
    let mut all = Vec::new();
    for top in subcommands_of(&[]) {
        all.extend(subcommands_of(&[&top]));
        all.push(top);
    }
    all
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    let subcommands = every_subcommand();
    for expected in [
        "issuer",
        "wallet",
        "auto-top-up",
        "order",
        "charge",
        "issue-prices",
    ] {
        assert!(
            subcommands.iter().any(|name| name == expected),
            "{expected} in {subcommands:?}"
        );
    }
    let required = std::env::var("DIVMID_REQUIRE_SHELLS").is_ok_and(|value| value == "1");
    let directory = tempfile::tempdir().expect("a temporary directory");
    for (shell, check) in [
        ("bash", Some(&["-n"][..])),
        ("zsh", Some(&["-n"][..])),
        ("fish", Some(&["--no-execute"][..])),
        ("powershell", None),
        ("elvish", None),
    ] {
        let script = divmid(&["completions", shell]);
        assert!(script.len() > 1_000, "{shell}: {} bytes", script.len());
        for name in &subcommands {
            assert!(
                script.contains(name.as_str()),
                "{shell}'s script lacks {name}"
            );
        }
        let Some(flags) = check else { continue };
        let path = directory.path().join(format!("divmid.{shell}"));
        std::fs::write(&path, &script).expect("written");
        match Command::new(shell).args(flags).arg(&path).output() {
            Ok(output) => assert!(
                output.status.success(),
                "{shell} refuses its script: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) if !required => eprintln!(
                "NOT CHECKED: {shell} could not run ({error}); install it (apt-get install \
                 {shell}) to check its script's syntax"
            ),
            Err(error) => panic!("{shell} is required here (DIVMID_REQUIRE_SHELLS=1): {error}"),
        }
    }
}
