//! `adapter.toml`: relative paths follow the file, the environment overrides it, bad
//! values are named, and the binary exits 64 on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, path::Path, process::Command};

use mirsal_adapter::config::{AdapterConfig, LogFormat, env};

fn bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in
        ["ca.pem", "crl.pem", "signing.key", "signing.pem", "sealing.key", "sealing.pem", "http.token"]
    {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    dir
}

const TOML: &str = r#"
agency = "MOF"
data_dir = "data"

[broker]
url = "amqp://MOF:secret@127.0.0.1:5672/mirsal"

[pki]
ca = "ca.pem"
crl = "crl.pem"
signing_key = "signing.key"
signing_certificate = "signing.pem"
sealing_key = "sealing.key"
sealing_certificate = "sealing.pem"
"#;

fn parse(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Result<AdapterConfig, String> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    AdapterConfig::parse(&format!("{TOML}{extra}"), &dir.join("adapter.toml"), |k| env.get(k).cloned())
        .map_err(|e| e.to_string())
}

#[test]
fn relative_paths_are_relative_to_the_bundle() {
    let dir = bundle();
    let config = parse(dir.path(), "", &[]).unwrap();
    assert_eq!(config.data_dir, dir.path().join("data"));
    assert_eq!(config.pki.signing_key, dir.path().join("signing.key"));
    assert_eq!(config.http.token_file, dir.path().join("http.token"));
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8480");
    assert_eq!(config.broker.prefetch, 64);
    assert!(config.webhook.is_none());
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = bundle();
    let config = parse(
        dir.path(),
        "",
        &[
            (env::BROKER_URL, "amqps://broker:5671/mirsal?auth_mechanism=external"),
            (env::HTTP_LISTEN, "127.0.0.1:9999"),
            (env::WEBHOOK_URL, "http://127.0.0.1:9000/hook"),
            (env::LOG_FORMAT, "json"),
        ],
    )
    .unwrap();
    assert!(config.broker.url.starts_with("amqps://"));
    assert_eq!(config.http.listen.port(), 9999);
    assert_eq!(config.webhook.unwrap().url, "http://127.0.0.1:9000/hook");
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn bad_values_are_named() {
    let dir = bundle();
    for (extra, env, expected) in [
        ("", vec![(env::BROKER_URL, "http://x")], "broker.url"),
        ("", vec![(env::HTTP_LISTEN, "everywhere")], env::HTTP_LISTEN),
        ("\n[webhook]\nurl = \"ftp://x\"\n", vec![], "webhook.url"),
        ("\n[http]\nsurprise = true\n", vec![], "surprise"),
    ] {
        let error = parse(dir.path(), extra, &env).unwrap_err();
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }
    std::fs::remove_file(dir.path().join("sealing.key")).unwrap();
    assert!(parse(dir.path(), "", &[]).unwrap_err().contains("pki.sealing_key"));
    let error =
        AdapterConfig::parse(&TOML.replace("\"MOF\"", "\"mof\""), &dir.path().join("a.toml"), |_| None);
    assert!(error.unwrap_err().to_string().contains("agency"));
}

#[test]
fn the_binary_exits_64_on_a_bad_configuration() {
    let dir = bundle();
    let path = dir.path().join("adapter.toml");
    std::fs::write(&path, TOML.replace("amqp://", "http://")).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_mirsal-adapter")).arg("--config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broker.url"));
    std::fs::write(&path, TOML).unwrap();
    std::fs::write(dir.path().join("http.token"), "  \n").unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_mirsal-adapter")).arg("--config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(64), "an empty token is refused");
}
