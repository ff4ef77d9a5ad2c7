//! The monitoring files in `deploy/monitoring/`: Prometheus's own `promtool` checks the
//! configuration and the alert rules and runs the rules' unit tests (each alert fires on
//! the series that should raise it). `.ci/run` installs promtool (Debian's `prometheus`
//! package) and sets `DIVMID_REQUIRE_PROMTOOL=1`, which makes a missing promtool a
//! failure; elsewhere the test says it did not run and how to install it. That the
//! dashboard and the rules name only metrics the server serves is checked against a live
//! scrape in `tests/metrics.rs`.

use std::process::Command;

#[test]
fn promtool_accepts_the_configuration_and_every_alert_fires_when_it_should() {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");
    let required = std::env::var("DIVMID_REQUIRE_PROMTOOL").is_ok_and(|value| value == "1");
    for arguments in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let output = match Command::new("promtool")
            .args(arguments)
            .current_dir(directory)
            .output()
        {
            Ok(output) => output,
            Err(error) if !required => {
                eprintln!(
                    "NOT RUN: promtool could not run ({error}); install it (apt-get install \
                     prometheus) to check deploy/monitoring"
                );
                return;
            }
            Err(error) => panic!("promtool is required here (DIVMID_REQUIRE_PROMTOOL=1): {error}"),
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
