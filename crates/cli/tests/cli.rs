//! The `mirsal` binary end to end on files: pki init → issue → envelope new → seal →
//! sign → verify → open → inspect, and the refusals an integrator will meet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn mirsal(&self) -> Command {
        let mut command = Command::cargo_bin("mirsal").unwrap();
        command.current_dir(self.dir.path()).env("MIRSAL_PKI_DIR", self.path("pki"));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.mirsal().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "mirsal {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must be refused; returns its one line of stderr.
    fn refused(&self, args: &[&str], code: i32) -> String {
        let output = self.mirsal().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(code),
            "mirsal {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one clear line, got {stderr:?}");
        stderr
    }

    /// A short letter from MOF to MOH as a JSON draft.
    fn draft(&self, classification: &str, output: &str) {
        let args = ["--from", "MOF", "--to", "MOH", "--subject", "s", "--classification", classification];
        self.run(&[&["envelope", "new"][..], &args, &["-o", output]].concat());
    }

    fn platform(&self) {
        self.run(&["pki", "init"]);
        self.run(&["pki", "issue", "MOF", "--name", "Ministry of Finance", "--name-ar", "وزارة المالية"]);
        self.run(&["pki", "issue", "MOH", "--name", "Ministry of Health", "--name-ar", "وزارة الصحة"]);
        self.run(&["pki", "issue", "MOE", "--name", "Ministry of Education"]);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_whole_flow_on_files() {
    let ws = Workspace::new();
    ws.platform();
    for key in
        ["pki/ca.key", "pki/platform.key", "pki/agencies/MOF/signing.key", "pki/agencies/MOH/sealing.key"]
    {
        assert_eq!(mode(&ws.path(key)), 0o600, "{key}");
    }
    let scan = b"%PDF-1.7 scanned letter".to_vec();
    fs::write(ws.path("scan.pdf"), &scan).unwrap();

    ws.run(&[
        "envelope",
        "new",
        "--from",
        "MOF",
        "--to",
        "MOH",
        "--copy",
        "MOE",
        "--subject",
        "تعميم الموازنة 2027",
        "--body",
        "تحية طيبة وبعد",
        "--outgoing-number",
        "MOF/2026/1187",
        "--outgoing-date",
        "2026-12-04",
        "--main",
        "scan.pdf",
        "--classification",
        "confidential",
        "--priority",
        "urgent",
        "-o",
        "draft.json",
    ]);
    ws.run(&["envelope", "seal", "draft.json", "-o", "sealed.json"]);
    let signed = ws.run(&["envelope", "sign", "sealed.json", "--agency", "MOF", "-o", "letter.mirsal"]);
    assert!(signed.starts_with("signed "), "{signed}");

    let verified = ws.run(&["envelope", "verify", "letter.mirsal"]);
    assert!(verified.contains("sealed letter from MOF to MOH, MOE, signed by MOF"), "{verified}");

    let opened: Value = serde_json::from_str(&ws.run(&[
        "envelope",
        "open",
        "letter.mirsal",
        "--agency",
        "MOH",
        "--save-attachments",
        "received",
    ]))
    .unwrap();
    assert_eq!(opened["subject"], "تعميم الموازنة 2027");
    assert_eq!(opened["body"], "تحية طيبة وبعد");
    assert_eq!(opened["outgoingNumber"], "MOF/2026/1187");
    assert_eq!(opened["attachments"][0]["name"], "scan.pdf");
    assert_eq!(opened["attachments"][0]["mediaType"], "application/pdf");
    assert_eq!(opened["attachments"][0]["mainDocument"], true);
    assert_eq!(fs::read(ws.path("received/scan.pdf")).unwrap(), scan);
    ws.run(&["envelope", "open", "letter.mirsal", "--agency", "MOE"]);

    let inspected: Value = serde_json::from_str(&ws.run(&["envelope", "inspect", "letter.mirsal"])).unwrap();
    let draft: Value = serde_json::from_str(&fs::read_to_string(ws.path("draft.json")).unwrap()).unwrap();
    let header = &inspected["content"]["header"];
    assert_eq!(header["envelopeId"], draft["header"]["envelopeId"]);
    assert_eq!(header["sender"], "MOF");
    assert_eq!(header["recipients"][0]["agency"], "MOH");
    assert_eq!(header["recipients"][0]["role"], "RECIPIENT_ROLE_ACTION");
    assert_eq!(header["recipients"][1]["agency"], "MOE");
    assert_eq!(header["recipients"][1]["role"], "RECIPIENT_ROLE_COPY");
    assert_eq!(header["classification"], "CLASSIFICATION_CONFIDENTIAL");
    assert_eq!(header["priority"], "PRIORITY_URGENT");
    assert_eq!(header["threadId"], header["envelopeId"]);
    assert!(inspected["content"].get("letter").is_none(), "a sealed letter shows no plain text");
    let sealed = &inspected["content"]["sealed"];
    assert_eq!(sealed["cipher"], "CONTENT_CIPHER_AES_256_GCM");
    assert_eq!(sealed["keys"][0]["agency"], "MOH");
    assert_eq!(sealed["keys"][1]["agency"], "MOE");
    assert_eq!(sealed["keys"][0]["algorithm"], "KEY_WRAP_ALGORITHM_ECDH_ES_P256_HKDF_SHA256");
    let signature = &inspected["signature"];
    assert_eq!(signature["algorithm"], "SIGNATURE_ALGORITHM_ECDSA_P256_SHA256");
    assert_eq!(signature["certificate_chain"][0]["subject"], "CN=MOF, O=Ministry of Finance");
    assert_eq!(signature["certificate_chain"][0]["issuer"], "CN=Mirsal Platform CA");
    let bytes = fs::read(ws.path("letter.mirsal")).unwrap();
    let envelope: mirsal_envelope_view::Envelope = mirsal_envelope_view::decode(&bytes);
    assert_eq!(
        inspected["signed_content_sha256"],
        hex::encode(openssl::sha::sha256(&envelope.signed_content))
    );
    assert_eq!(inspected["signed_content_bytes"], envelope.signed_content.len());
}

/// The few wire fields the test needs, decoded without the envelope crate so the test
/// checks the binary's output against an independent reading of the bytes.
mod mirsal_envelope_view {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Envelope {
        #[prost(bytes = "vec", tag = "1")]
        pub(super) signed_content: Vec<u8>,
    }

    pub(super) fn decode(bytes: &[u8]) -> Envelope {
        prost::Message::decode(bytes).unwrap()
    }
}

#[test]
fn a_third_agency_cannot_open_and_a_revoked_sender_is_refused() {
    let ws = Workspace::new();
    ws.platform();
    ws.draft("secret", "d.json");
    ws.run(&["envelope", "seal", "d.json", "-o", "s.json"]);
    ws.run(&["envelope", "sign", "s.json", "--agency", "MOF", "-o", "e.mirsal"]);
    let line = ws.refused(&["envelope", "open", "e.mirsal", "--agency", "MOE"], 1);
    assert!(line.contains("[reason 500 REASON_CODE_NOT_SEALED_FOR_RECIPIENT]"), "{line}");

    ws.run(&["pki", "revoke", "MOF"]);
    let line = ws.refused(&["envelope", "verify", "e.mirsal"], 1);
    assert!(
        line.contains("revoked") && line.contains("[reason 206 REASON_CODE_CERTIFICATE_REVOKED]"),
        "{line}"
    );
    let listing: Value = serde_json::from_str(&ws.run(&["pki", "list", "--json"])).unwrap();
    let mof: Vec<&Value> = listing.as_array().unwrap().iter().filter(|e| e["code"] == "MOF").collect();
    assert_eq!(mof.len(), 2);
    assert!(mof.iter().all(|e| e["revoked_at"].is_string()));
}

#[test]
fn tampered_and_unsealed_envelopes_are_refused_with_their_codes() {
    let ws = Workspace::new();
    ws.platform();
    ws.draft("unclassified", "d.json");
    ws.run(&["envelope", "sign", "d.json", "--agency", "MOF", "-o", "e.mirsal"]);
    let mut bytes = fs::read(ws.path("e.mirsal")).unwrap();
    bytes[20] ^= 0x40;
    fs::write(ws.path("tampered.mirsal"), &bytes).unwrap();
    let line = ws.refused(&["envelope", "verify", "tampered.mirsal"], 1);
    assert!(line.contains("[reason 200 REASON_CODE_BAD_SIGNATURE]"), "{line}");

    fs::write(ws.path("garbage.mirsal"), b"not an envelope at all").unwrap();
    let line = ws.refused(&["envelope", "inspect", "garbage.mirsal"], 1);
    assert!(line.contains("[reason 100 REASON_CODE_MALFORMED_ENVELOPE]"), "{line}");

    ws.draft("confidential", "c.json");
    let line = ws.refused(&["envelope", "sign", "c.json", "--agency", "MOF", "-o", "c.mirsal"], 1);
    assert!(line.contains("[reason 312 REASON_CODE_SEALING_REQUIRED]"), "{line}");
    assert!(!ws.path("c.mirsal").exists());

    let line = ws.refused(&["envelope", "new", "--from", "MOF", "--to", "MOF", "--subject", "s"], 1);
    assert!(line.contains("[reason 304 REASON_CODE_SENDER_IS_RECIPIENT]"), "{line}");

    // MOH cannot sign a draft that says it comes from MOF.
    let line = ws.refused(&["envelope", "sign", "d.json", "--agency", "MOH", "-o", "x.mirsal"], 2);
    assert!(line.contains("header sender MOF is not the signing identity MOH"), "{line}");
}

#[test]
fn keys_are_never_overwritten_without_force() {
    let ws = Workspace::new();
    ws.platform();
    let ca_before = fs::read(ws.path("pki/ca.key")).unwrap();
    let line = ws.refused(&["pki", "init"], 2);
    assert!(line.contains("refusing to replace"), "{line}");
    assert_eq!(fs::read(ws.path("pki/ca.key")).unwrap(), ca_before);

    let key_before = fs::read(ws.path("pki/agencies/MOF/signing.key")).unwrap();
    let line = ws.refused(&["pki", "issue", "MOF", "--name", "Ministry of Finance"], 2);
    assert!(line.contains("--force"), "{line}");
    assert_eq!(fs::read(ws.path("pki/agencies/MOF/signing.key")).unwrap(), key_before);

    ws.run(&["pki", "issue", "MOF", "--name", "Ministry of Finance", "--force"]);
    assert_ne!(fs::read(ws.path("pki/agencies/MOF/signing.key")).unwrap(), key_before);
    assert_eq!(mode(&ws.path("pki/agencies/MOF/signing.key")), 0o600);
    let listing: Value = serde_json::from_str(&ws.run(&["pki", "list", "--json"])).unwrap();
    let mof: Vec<&Value> = listing.as_array().unwrap().iter().filter(|e| e["code"] == "MOF").collect();
    assert_eq!(mof.len(), 4, "the old pair is kept, revoked, beside the new one");
    assert_eq!(mof.iter().filter(|e| e["revoked_at"].is_string()).count(), 2);

    let line = ws.refused(&["pki", "issue", "MIRSAL", "--name", "x"], 2);
    assert!(line.contains("reserved"), "{line}");
    let line = ws.refused(&["pki", "issue", "mof", "--name", "x"], 2);
    assert!(line.contains("invalid agency code"), "{line}");
}

#[test]
fn a_missing_pki_says_how_to_create_one() {
    let ws = Workspace::new();
    ws.mirsal()
        .args(["pki", "issue", "MOF", "--name", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("run `mirsal pki init`"));
}
