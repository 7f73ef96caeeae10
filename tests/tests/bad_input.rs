//! Bad input gets a clear error naming the file and line, and loses nothing: a truncated file,
//! a file in the wrong encoding, a file without a configured column; and `hub validate` lists
//! every problem of a broken config and exits non-zero.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hub_tests::hub::{
    HubProcess, TestBus, drop_file, files_in, free_port, hub_bin, test_bed, wait_for, write_config,
};
use integration_hub::demo_data::{self, Options};

const SETTLE: Duration = Duration::from_secs(120);

fn utf8(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1251.decode(bytes).0.into_owned()
}

fn cp1251(text: &str) -> Vec<u8> {
    encoding_rs::WINDOWS_1251.encode(text).0.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_wrong_encoding_and_unknown_column_are_reported_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let inbox = dir.path().join("inbox");
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();

    // A truncated export: the last row stops in its fifth cell.
    let g = demo_data::generate(&Options {
        customers: 200,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let text = utf8(&g.bytes);
    let body = text.trim_end_matches("\r\n");
    let last_start = body.rfind("\r\n").unwrap() + 2;
    let last_row = &body[last_start..];
    let cut: String = last_row.split(';').take(5).collect::<Vec<_>>().join(";");
    let truncated = format!("{}{}", &body[..last_start], cut);
    let last_line = body.lines().count() as u64;
    drop_file(&inbox, "truncated.csv", &cp1251(&truncated)).unwrap();

    // The same kind of export, but written in UTF-8 while the source expects windows-1251.
    let g2 = demo_data::generate(&Options {
        customers: 50,
        first_id: 5000,
        ..Options::default()
    });
    drop_file(&inbox, "wrong_encoding.csv", utf8(&g2.bytes).as_bytes()).unwrap();

    // A configured column missing from the header.
    let g3 = demo_data::generate(&Options {
        customers: 50,
        first_id: 9000,
        ..Options::default()
    });
    let renamed = utf8(&g3.bytes).replacen("ИНН", "ИНН_клиента", 1);
    drop_file(&inbox, "unknown_column.csv", &cp1251(&renamed)).unwrap();

    // A quote opened and never closed: the rest of the file would be one endless cell.
    let g4 = demo_data::generate(&Options {
        customers: 100,
        first_id: 20_000,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let mut endless = utf8(&g4.bytes);
    let open_line = endless.lines().count() + 1;
    endless.push_str("\"C99999999;1;ФЛ;");
    for i in 0..200_000 {
        endless.push_str(&format!("продолжение строки {i}\r\n"));
    }
    drop_file(&inbox, "unclosed_quote.csv", &cp1251(&endless)).unwrap();

    wait_for("four files handled", SETTLE, || {
        hub.assert_running()?;
        Ok(files_in(&inbox.join("archive"), ".csv").len()
            + files_in(&inbox.join("failed"), ".csv").len()
            == 4)
    })
    .await
    .unwrap();

    // Truncated: every complete row delivered, the cut row quarantined with its line.
    let delivered: Vec<&String> = g.valid_keys.iter().take(g.valid_keys.len() - 1).collect();
    wait_for(
        "complete rows of the truncated file delivered",
        SETTLE,
        || Ok(crm.contacts_len() >= delivered.len()),
    )
    .await
    .unwrap();
    for k in &delivered {
        assert!(crm.contact(k).is_some(), "{k} missing");
    }
    assert!(crm.contact(&g.valid_keys[g.valid_keys.len() - 1]).is_none());
    assert!(inbox.join("archive").join("truncated.csv").exists());
    let q = std::fs::read_to_string(
        inbox
            .join("quarantine")
            .join("truncated.csv.quarantine.csv"),
    )
    .unwrap();
    assert!(
        q.lines()
            .any(|l| l.starts_with(&format!("{last_line};row;"))),
        "quarantine does not name line {last_line}: {q}"
    );

    // Wrong encoding and unknown column: the whole file in failed/, with the reason beside it.
    assert_failed(
        &inbox,
        "wrong_encoding.csv",
        &["wrong_encoding.csv", "line 1", "utf-8"],
    );
    assert_failed(
        &inbox,
        "unknown_column.csv",
        &["unknown_column.csv", "line 1", "ИНН", "not found in header"],
    );
    for k in g2.valid_keys.iter().chain(&g3.valid_keys) {
        assert!(
            crm.contact(k).is_none(),
            "{k} from a failed file reached the CRM"
        );
    }
    // Reading stopped at the open quote: the rows before it are delivered, the file is in
    // failed/ with the line where reading stopped.
    assert_failed(
        &inbox,
        "unclosed_quote.csv",
        &["unclosed_quote.csv", &format!("line {open_line}"), "8 MiB"],
    );
    wait_for("rows before the open quote delivered", SETTLE, || {
        Ok(crm.contacts_len() >= delivered.len() + g4.valid_keys.len())
    })
    .await
    .unwrap();
    for k in &g4.valid_keys {
        assert!(
            crm.contact(k).is_some(),
            "{k} before the open quote missing"
        );
    }
    assert_eq!(crm.contacts_len(), delivered.len() + g4.valid_keys.len());

    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(log.contains("\"file_failed\""), "no file_failed log line");
    assert!(log.contains("wrong_encoding.csv"));
}

fn assert_failed(inbox: &Path, name: &str, needles: &[&str]) {
    let failed = inbox.join("failed");
    assert!(failed.join(name).exists(), "{name} not in failed/");
    let report = std::fs::read_to_string(failed.join(format!("{name}.error.txt")))
        .unwrap_or_else(|e| panic!("no error report for {name}: {e}"));
    for n in needles {
        assert!(
            report.contains(n),
            "error report of {name} lacks `{n}`: {report}"
        );
    }
}

#[test]
fn validate_lists_every_problem_of_a_broken_config_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"[bus]
kind = "kafka"

[[sources]]
name = "abs"
kind = "file_drop"
colour = "blue"
[sources.file_drop]
inbox = "in"
encoding = "koi8-r"
[sources.columns]
key = "id"

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "crm.local"
token = "plain-secret"
"#,
    )
    .unwrap();
    let out = Command::new(hub_bin())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "5 problem(s) found",
        "line 2: bus.kind",
        "line 7: sources[0].colour: unknown field",
        "line 10: sources[0].file_drop.encoding: unknown variant `koi8-r`",
        "line 18: sinks[0].crm_rest.base_url",
        "line 19: sinks[0].crm_rest.token: secrets must be references",
    ] {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
    assert!(err.contains("broken.toml"), "the file is not named:\n{err}");
}

#[test]
fn validate_accepts_a_good_config_and_checks_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &TestBus::Embedded,
        "hub",
        "http://127.0.0.1:1",
        "127.0.0.1:0",
    )
    .unwrap();
    // The token file is missing: the configuration is fine, the environment is not.
    let out = Command::new(hub_bin())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("crm_rest.token: cannot read secret file"),
        "{err}"
    );

    std::fs::write(dir.path().join("crm.token"), "t").unwrap();
    let out = Command::new(hub_bin())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hub_on_the_same_data_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.token"), "t").unwrap();
    let config = write_config(
        dir.path(),
        &TestBus::Embedded,
        "hub",
        "http://127.0.0.1:1",
        &format!("127.0.0.1:{}", free_port().unwrap()),
    )
    .unwrap();
    let log = dir.path().join("hub.log");
    let mut first = HubProcess::start(&config, &log).unwrap();
    wait_for("first hub holds the data folder", SETTLE, || {
        first.assert_running()?;
        Ok(std::fs::read_to_string(&log)?.contains("sink started"))
    })
    .await
    .unwrap();
    let out = Command::new(hub_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another hub process is running on the data folder"),
        "{err}"
    );
    first.assert_running().unwrap();
}
