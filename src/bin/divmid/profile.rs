//! Profiles: named ways to reach an exchange (its address, the file holding your token,
//! the CA of its certificate), kept in `profiles.toml` in the platform's configuration
//! folder (`directories`: `~/.config/divmid` on Linux, `~/Library/Application
//! Support/divmid` on macOS, `%APPDATA%\divmid\config` on Windows; `DIVMID_CONFIG_DIR`
//! overrides it), written mode 0600 where the platform has modes. A profile names a token
//! file rather than holding the token, and nothing here prints a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{Arguments, ProfileCommand};

/// The address used when neither `--server` nor a profile gives one.
pub const SERVER_DEFAULT: &str = "http://127.0.0.1:50051";
const FILE_NAME: &str = "profiles.toml";

/// One way to reach an exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `http://` or `https://` address.
    pub server: String,
    /// A file holding the bearer token (its first line).
    pub token_file: Option<PathBuf>,
    /// The CA of the server's certificate, for `https://`.
    pub ca_file: Option<PathBuf>,
}

/// The profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profiles {
    /// The profile used when `--profile` is not given.
    active: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Where the client reaches the exchange, and as whom, once flags and profile are merged.
pub struct Reach {
    pub server: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// The configuration folder.
pub fn directory() -> Result<PathBuf, String> {
    if let Some(directory) = std::env::var_os("DIVMID_CONFIG_DIR") {
        return Ok(PathBuf::from(directory));
    }
    directories::ProjectDirs::from("", "", "divmid")
        .map(|directories| directories.config_dir().to_path_buf())
        .ok_or_else(|| "no home directory to keep profiles in; set DIVMID_CONFIG_DIR".into())
}

fn load(path: &Path) -> Result<Profiles, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Profiles::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Writes the file whole: a temporary file, mode 0600, renamed over the old one.
fn save(path: &Path, profiles: &Profiles) -> Result<(), String> {
    let text = toml::to_string(profiles).map_err(|error| error.to_string())?;
    let directory = path.parent().expect("the file is in a directory");
    std::fs::create_dir_all(directory)
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    let temporary = path.with_extension("toml.partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// The names of the profiles, for an error a person can act on.
fn known(profiles: &Profiles) -> String {
    match profiles
        .profiles
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
    {
        names if names.is_empty() => "there are none; add one with `divmid profile add`".into(),
        names => format!("known profiles: {}", names.join(", ")),
    }
}

/// Prints `json` with `--output json`, otherwise `text`.
fn say(json: bool, value: serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// Runs a `divmid profile` command; with `json`, each result is one JSON object a line.
pub fn command(command: ProfileCommand, json: bool) -> Result<(), String> {
    let path = directory()?.join(FILE_NAME);
    let mut profiles = load(&path)?;
    match command {
        ProfileCommand::Add {
            name,
            server,
            token_file,
            ca_file,
        } => {
            let profile = Profile {
                server,
                token_file,
                ca_file,
            };
            add(&path, &mut profiles, name, profile, json)?;
        }
        ProfileCommand::List => list(&profiles, json)?,
        ProfileCommand::Use { name } => {
            if !profiles.profiles.contains_key(&name) {
                return Err(format!("no profile {name}: {}", known(&profiles)));
            }
            profiles.active = Some(name.clone());
            save(&path, &profiles)?;
            say(
                json,
                serde_json::json!({ "active": name }),
                &format!("using profile {name}"),
            );
        }
        ProfileCommand::Remove { name } => {
            if profiles.profiles.remove(&name).is_none() {
                return Err(format!("no profile {name}: {}", known(&profiles)));
            }
            if profiles.active.as_deref() == Some(name.as_str()) {
                profiles.active = None;
            }
            save(&path, &profiles)?;
            let text = format!("profile {name} removed");
            say(json, serde_json::json!({ "removed": name }), &text);
        }
    }
    Ok(())
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn read_token(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("cannot read the token file {}: {error}", file.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", file.display()));
    }
    Ok(token)
}

/// Where and as whom to call: `--server`, `--token` and `--ca-file` (or their environment
/// variables) first, then the profile (`--profile`, or the one in use), then the default
/// address.
pub fn reach(arguments: &Arguments) -> Result<Reach, String> {
    let profiles = load(&directory()?.join(FILE_NAME))?;
    let profile = match &arguments.profile {
        Some(name) => Some(
            profiles
                .profiles
                .get(name)
                .ok_or_else(|| format!("--profile: no profile {name}: {}", known(&profiles)))?,
        ),
        None => profiles
            .active
            .as_ref()
            .and_then(|name| profiles.profiles.get(name)),
    };
    let token = match (
        &arguments.token,
        profile.and_then(|p| p.token_file.as_ref()),
    ) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(read_token(file)?),
        (None, None) => None,
    };
    Ok(Reach {
        server: arguments
            .server
            .clone()
            .or_else(|| profile.map(|p| p.server.clone()))
            .unwrap_or_else(|| SERVER_DEFAULT.to_string()),
        token,
        ca_file: arguments
            .ca_file
            .clone()
            .or_else(|| profile.and_then(|p| p.ca_file.clone())),
    })
}

/// Saves a profile, checked; the first one saved is put in use.
fn add(
    path: &Path,
    profiles: &mut Profiles,
    name: String,
    profile: Profile,
    json: bool,
) -> Result<(), String> {
    let server = &profile.server;
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(format!(
            "--server: {server} is not an http:// or https:// address"
        ));
    }
    if let Some(file) = &profile.token_file {
        read_token(file)?;
    }
    let profile = Profile {
        token_file: profile.token_file.map(absolute),
        ca_file: profile.ca_file.map(absolute),
        ..profile
    };
    let first = profiles.profiles.is_empty();
    profiles.profiles.insert(name.clone(), profile);
    if first {
        profiles.active = Some(name.clone());
    }
    save(path, profiles)?;
    let text = format!(
        "profile {name} saved{}",
        if first { " and in use" } else { "" }
    );
    say(
        json,
        serde_json::json!({ "saved": name, "active": first }),
        &text,
    );
    Ok(())
}

/// Prints the profiles, `*` marking the one in use; never a token.
fn list(profiles: &Profiles, json: bool) -> Result<(), String> {
    if profiles.profiles.is_empty() && !json {
        println!("no profiles; add one with `divmid profile add NAME --server URL`");
    }
    for (name, profile) in &profiles.profiles {
        let active = profiles.active.as_deref() == Some(name.as_str());
        if json {
            let mut value = serde_json::to_value(profile).map_err(|error| error.to_string())?;
            value["name"] = name.as_str().into();
            value["active"] = active.into();
            println!("{value}");
            continue;
        }
        let token = match &profile.token_file {
            Some(file) => format!("token from {}", file.display()),
            None => "no token".to_string(),
        };
        println!(
            "{} {name}: {} ({token})",
            if active { "*" } else { " " },
            profile.server
        );
    }
    Ok(())
}
