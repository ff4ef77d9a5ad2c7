//! The layering of `src/`, read from the source as rust-analyzer's tidy tests do: the
//! modules form a DAG in the reading order `src/lib.rs` lists them in, sled is known only
//! to the store, tonic, prost, axum, hyper and the generated proto only to the API and
//! the binaries, and the pure modules do no I/O (no runtime, threads, sockets, files,
//! clock or randomness) and no floating point (money is integers). In the API, only
//! `api/status.rs` builds a `Status`: every refusal's code is chosen in one place, and
//! the API's own modules use one another without circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that do no I/O.
const PURE: &[&str] = &[
    "types",
    "error",
    "ledger",
    "command",
    "event",
    "usage",
    "market_data",
    "engine",
];

/// What a pure module may not name.
const IO: &[&str] = &[
    "tokio::",
    "sled::",
    "tonic::",
    "std::fs",
    "std::thread",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "SystemTime",
    "Instant::now",
    "rand::",
    "getrandom",
];

/// External crates and the modules (or binaries) allowed to name them.
const CONFINED: &[(&str, &[&str])] = &[
    ("sled::", &["store"]),
    ("tonic::", &["api", "bin"]),
    ("prost::", &["api", "bin"]),
    ("axum::", &["api", "bin"]),
    ("hyper::", &["api", "bin"]),
];

/// The one file of the API that builds a gRPC status.
const STATUS_FILE: &str = "api/status.rs";

/// Where `code` (before its tests) builds a `Status` itself: `Status::` followed by a
/// constructor (`new`, `internal`, ...), not by a constant or a longer type's variant.
fn builds_status(code: &str) -> Option<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    code.match_indices("Status::").find_map(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + "Status::".len()..];
        let constructor: String = after
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let named_alone = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        (named_alone && !constructor.is_empty()).then(|| format!("Status::{constructor}"))
    })
}

/// The modules of `src/lib.rs`'s reading order: each `[`name`]` of its `//! - ` list.
fn reading_order(lib: &str) -> Vec<String> {
    let mut order = Vec::new();
    for line in lib.lines().filter(|line| line.starts_with("//! - ")) {
        for piece in line.split("[`").skip(1) {
            if let Some((name, _)) = piece.split_once("`]") {
                order.push(name.to_string());
            }
        }
    }
    order
}

/// The module a source file belongs to: `src/engine/book.rs` is `engine`, `src/config.rs`
/// is `config`, anything under `src/bin` is `bin`.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// The source without comments (a line's text after `//`), so that a doc link to another
/// module is no dependency.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate modules `code` names: `crate::x` paths and `crate::{x, y}` groups.
fn crate_modules(code: &str) -> Vec<String> {
    modules_after(code, "crate::")
}

/// The names that follow `prefix` in `code`, alone (`prefix x`) or in a group
/// (`prefix {x, y}`).
fn modules_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in code.split(prefix).skip(1) {
        let mut group = |text: &str| {
            let name: String = text
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        };
        match piece.strip_prefix('{') {
            Some(inner) => inner
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .for_each(&mut group),
            None => group(piece),
        }
    }
    names
}

/// Every breach of the layering among `files` (paths relative to `src/`, and their text).
fn breaches(order: &[String], files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let module = module_of(path);
        let code = code_of(text);
        let shown = path.display();
        if module != "bin" && module != "lib" {
            match order.iter().position(|name| *name == module) {
                None => found.push(format!(
                    "src/{shown}: module {module} is missing from lib.rs's reading order"
                )),
                Some(place) => {
                    for used in crate_modules(&code) {
                        let Some(used_place) = order.iter().position(|name| *name == used) else {
                            continue;
                        };
                        if used_place >= place && used != module {
                            found.push(format!(
                                "src/{shown}: {module} uses crate::{used}, which lib.rs lists after it"
                            ));
                        }
                    }
                }
            }
        }
        for (name, allowed) in CONFINED {
            if code.contains(name) && !allowed.contains(&module.as_str()) {
                found.push(format!(
                    "src/{shown}: {module} names {name}, which only {allowed:?} may"
                ));
            }
        }
        if module == "api" && path != Path::new(STATUS_FILE) {
            if let Some(built) = builds_status(&code) {
                found.push(format!(
                    "src/{shown}: builds {built}, which only src/{STATUS_FILE} may"
                ));
            }
        }
        if PURE.contains(&module.as_str()) {
            for name in IO.iter().filter(|name| code.contains(*name)) {
                found.push(format!("src/{shown}: {module} is pure but names {name}"));
            }
            let mut words = code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            if let Some(float) = words.find(|word| *word == "f64" || *word == "f32") {
                found.push(format!(
                    "src/{shown}: {module} keeps money but names {float}"
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The files of `src/api` by the module of the API they belong to (`api/context.rs` is
/// `context`, `api/services/trading.rs` is `services`), and the API's modules each names
/// outside its tests. `proto` is left out: it re-exports the two messages written by
/// hand (`book_update.rs`, `trade_batch.rs`) where the generated code names them.
fn api_uses(files: &[(PathBuf, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let Ok(inside) = path.strip_prefix("api") else {
            continue;
        };
        let parts: Vec<String> = inside
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        let module = parts[0].trim_end_matches(".rs").to_string();
        if module == "mod" || module == "proto" {
            continue;
        }
        let code = code_of(text.split("#[cfg(test)]").next().unwrap_or_default());
        // A file of a folder reaches the API's modules through one more `super`; the
        // folder's `mod.rs` does not.
        let in_folder = parts.len() > 1 && parts.last().is_some_and(|file| file != "mod.rs");
        let parent = if in_folder {
            "super::super::"
        } else {
            "super::"
        };
        let named = modules_after(&code, parent)
            .into_iter()
            .chain(modules_after(&code, "crate::api::"))
            .filter(|name| *name != module && name != "super")
            .collect::<Vec<_>>();
        uses.entry(module).or_default().extend(named);
    }
    uses
}

/// The circles among the API's modules: each group of modules that reach one another
/// through what they use, named in order.
fn api_circles(files: &[(PathBuf, String)]) -> Vec<String> {
    let uses = api_uses(files);
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut next = vec![from.to_string()];
        while let Some(module) = next.pop() {
            for used in uses.get(&module).into_iter().flatten() {
                if seen.insert(used.clone()) {
                    next.push(used.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        uses.keys().map(|module| (module, reach(module))).collect();
    let mut circles = BTreeSet::new();
    for (module, from_it) in &reached {
        if !from_it.contains(*module) {
            continue;
        }
        let circle: Vec<&str> = from_it
            .iter()
            .filter(|other| {
                reached
                    .get(other)
                    .is_some_and(|back| back.contains(*module))
            })
            .map(String::as_str)
            .collect();
        circles.insert(format!("src/api: {} use one another", circle.join(", ")));
    }
    circles.into_iter().collect()
}

fn source_files(directory: &Path, root: &Path, files: &mut Vec<(PathBuf, String)>) {
    let entries = std::fs::read_dir(directory).expect("src/ is readable");
    for entry in entries {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            source_files(&path, root, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            let relative = path.strip_prefix(root).expect("under src/").to_path_buf();
            files.push((relative, text));
        }
    }
}

#[test]
fn the_modules_keep_their_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let order = reading_order(&lib);
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|line| line.trim_end_matches(';'))
        .collect();
    let mut listed: Vec<&str> = order.iter().map(String::as_str).collect();
    listed.sort_unstable();
    let mut declared_sorted = declared.clone();
    declared_sorted.sort_unstable();
    assert_eq!(
        listed, declared_sorted,
        "lib.rs lists every module it declares, once"
    );
    let mut files = Vec::new();
    source_files(&src, &src, &mut files);
    assert!(
        files.len() > 50,
        "the source was read: {} files",
        files.len()
    );
    let found = breaches(&order, &files);
    assert!(
        found.is_empty(),
        "the layering is broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_api_modules_use_one_another_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &src, &mut files);
    let uses = api_uses(&files);
    assert!(
        uses.get("session")
            .is_some_and(|used| used.contains("context") && used.contains("convert")),
        "the API's files were read: {uses:?}"
    );
    let circles = api_circles(&files);
    assert!(circles.is_empty(), "{}", circles.join("\n"));
}

#[test]
fn a_planted_circle_among_the_api_modules_is_found() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let files = [
        file(
            "api/context.rs",
            "pub trades: super::trade_feed::TradeFeed,\n",
        ),
        file("api/trade_feed.rs", "use crate::types::MarketId;\n"),
        // A circle through a folder's file, and a use in tests that is none.
        file(
            "api/book_stream.rs",
            "use super::{context::Context, status};\n#[cfg(test)]\nuse super::session;\n",
        ),
        file(
            "api/services/market_data.rs",
            "use super::Api;\nfn f() { super::super::book_stream::start(); }\n",
        ),
        file("api/status.rs", "use crate::api::context::Context;\n"),
        // A folder's mod.rs names the API's modules through one `super`.
        file("api/web/mod.rs", "use super::listener::Timeouts;\n"),
        file("api/listener.rs", "use super::web::Gateway;\n"),
        file("api/session.rs", "use super::services::Api;\n"),
        file("api/context.rs", "use super::services::Api;\n"),
        // proto's re-exports of the hand-written messages are no circle.
        file("api/proto.rs", "pub use super::book_update::BookUpdate;\n"),
        file("api/book_update.rs", "use super::proto::Heartbeat;\n"),
    ];
    assert_eq!(
        api_circles(&files),
        [
            "src/api: book_stream, context, services, status use one another",
            "src/api: listener, web use one another",
        ]
    );
}

#[test]
fn a_planted_breach_of_each_rule_is_found() {
    let order: Vec<String> = ["types", "config", "engine", "store", "pipeline", "api"]
        .map(String::from)
        .to_vec();
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let files = [
        // Fine: earlier modules, a doc link, a grouped use of earlier ones.
        file(
            "engine/book.rs",
            "//! See [`crate::pipeline`].\nuse crate::types::Side;\n",
        ),
        file(
            "pipeline/mod.rs",
            "use crate::{engine::Sequencer, store::Store};\n",
        ),
        file("bin/tool.rs", "use tonic::Status;\n"),
        file(
            "api/health.rs",
            "fn f() { report(ServingStatus::NotServing, Status::GRPC_STATUS); }\n\
             #[cfg(test)]\nmod tests { fn t() { Status::new(Code::Ok, \"\"); } }\n",
        ),
        file(
            "api/status.rs",
            "pub fn busy() -> Status { Status::resource_exhausted(\"busy\") }\n",
        ),
        // Each breaks one rule.
        file("config.rs", "use crate::pipeline::PipelineConfig;\n"),
        file(
            "engine/matching.rs",
            "use crate::{types::Side, store::Store};\n",
        ),
        file(
            "pipeline/threads.rs",
            "fn f() { let _ = sled::open(\"x\"); }\n",
        ),
        file("store/mod.rs", "fn g() -> tonic::Status { todo() }\n"),
        file(
            "engine/sequencer.rs",
            "fn now() { std::time::Instant::now(); }\n",
        ),
        file("ledger/mod.rs", "use crate::types::Amount;\n"),
        file(
            "api/services.rs",
            "fn f() -> Status { Status::internal(\"oops\") }\n",
        ),
        file(
            "engine/fees.rs",
            "fn fee(price: u64) -> f64 { price as f64 / 1e3 }\n",
        ),
    ];
    let found = breaches(&order, &files);
    let expected = [
        "src/api/services.rs: builds Status::internal, which only src/api/status.rs may",
        "src/config.rs: config uses crate::pipeline, which lib.rs lists after it",
        "src/engine/fees.rs: engine keeps money but names f64",
        "src/engine/matching.rs: engine uses crate::store, which lib.rs lists after it",
        "src/engine/sequencer.rs: engine is pure but names Instant::now",
        "src/ledger/mod.rs: module ledger is missing from lib.rs's reading order",
        "src/pipeline/threads.rs: pipeline names sled::, which only [\"store\"] may",
        "src/store/mod.rs: store names tonic::, which only [\"api\", \"bin\"] may",
    ];
    assert_eq!(found, expected);
}
