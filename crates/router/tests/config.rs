//! The configuration: parsed, overridden from the environment, validated with errors
//! that name the key; the binary exits 64 on a bad one before connecting anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, path::Path, process::Command, time::Duration};

use mirsal_router::config::{LogFormat, RouterConfig, env};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.pem", "crl.pem", "platform.key", "platform.pem"] {
            std::fs::write(dir.path().join(name), "placeholder").unwrap();
        }
        Self { dir }
    }

    fn toml(&self, extra: &str) -> String {
        let p = |name: &str| self.dir.path().join(name).display().to_string();
        format!(
            "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n\n[pki]\nca = {:?}\ncrl = {:?}\nplatform_key = {:?}\nplatform_certificate = {:?}\n\n[storage]\ndata_dir = {:?}\n\n[directory]\npath = {:?}\n{extra}",
            p("ca.pem"),
            p("crl.pem"),
            p("platform.key"),
            p("platform.pem"),
            p("data"),
            p("directory.json"),
        )
    }

    fn parse(&self, extra: &str, env: &[(&str, &str)]) -> Result<RouterConfig, String> {
        let env: HashMap<String, String> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        RouterConfig::parse(&self.toml(extra), Path::new("router.toml"), |key| env.get(key).cloned())
            .map_err(|e| e.to_string())
    }
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let files = Files::new();
    let config = files.parse("", &[]).unwrap();
    assert_eq!(config.broker.prefetch, 512);
    assert_eq!(config.broker.delivery_limit, 20);
    assert_eq!(config.policy.max_clock_skew, Duration::from_secs(300));
    assert!(config.policy.require_user_id);
    assert_eq!(config.overdue.delivery_sla.urgent, Duration::from_secs(4 * 3600));
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.shutdown.grace, Duration::from_secs(10));
}

#[test]
fn durations_are_human_and_the_environment_overrides_the_file() {
    let files = Files::new();
    let extra = "\n[overdue]\ncheck_interval = \"5s\"\ndelivery_sla = { normal = \"2h\", urgent = \"30m\", immediate = \"5m\" }\n";
    let config = files
        .parse(
            extra,
            &[
                (env::BROKER_URL, "amqps://broker:5671/mirsal"),
                (env::PREFETCH, "64"),
                (env::LOG_FORMAT, "json"),
            ],
        )
        .unwrap();
    assert_eq!(config.overdue.delivery_sla.urgent, Duration::from_secs(1800));
    assert_eq!(config.broker.url, "amqps://broker:5671/mirsal");
    assert_eq!(config.broker.prefetch, 64);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn every_bad_value_is_named() {
    let files = Files::new();
    for (extra, env, expected) in [
        ("\n[policy]\nmax_clock_skew = \"soon\"\n", vec![], "max_clock_skew"),
        ("\n[shutdown]\ngrace = \"0s\"\nsurprise = 1\n", vec![], "surprise"),
        ("\n[audit]\nsign_interval = \"0s\"\n", vec![], "audit.sign_interval"),
        ("", vec![(env::BROKER_URL, "http://nope")], "broker.url"),
        ("", vec![(env::PREFETCH, "lots")], env::PREFETCH),
        ("", vec![(env::PREFETCH, "0")], "broker.prefetch"),
        ("", vec![(env::LOG_FORMAT, "xml")], env::LOG_FORMAT),
        ("", vec![(env::PKI_CA, "/no/such/ca.pem")], "pki.ca"),
        ("\n[log]\nlevel = \"loud=[\"\n", vec![], "log.level"),
    ] {
        let error = files.parse(extra, &env).unwrap_err();
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }
}

#[test]
fn the_binary_exits_64_on_a_bad_configuration() {
    let files = Files::new();
    let path = files.dir.path().join("router.toml");
    std::fs::write(&path, files.toml("\n[broker]\nprefetch = 1\n")).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_mirsal-router")).arg("--config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("mirsal-router: bad configuration:"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_mirsal-router"))
        .arg("--config")
        .arg(files.dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));

    let output = Command::new(env!("CARGO_BIN_EXE_mirsal-router")).arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
}
