//! Parses every bank-format sample under a fixtures folder and prints what each file gave.
//!
//! `cargo run -p adapters --example parse_fixtures -- [FOLDER] [--records]`
//!
//! FOLDER defaults to `/work/shared/fixtures/formats`. The format comes from the sub-folder:
//! `iso20022/` camt, `mt940/` MT940/MT942, `1c/` 1C ClientBankExchange, `csv/` the
//! bank-statement CSV (a card-statement layout: `Дата операции`, `Сумма операции`, ...).
//! `soap/` is skipped. Expected: every camt, MT940, 1C and CSV sample reads without an error,
//! every `pain.*` file is rejected with one file-level error. The exit code is 1 if not.
//! `--records` prints every record as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adapters::file_drop::Encoding;
use adapters::formats::FormatConfig;
use adapters::formats::camt::CamtConfig;
use adapters::formats::csv_statement::CsvStatementConfig;
use adapters::formats::mt940::Mt940Config;
use adapters::formats::onec::OneCConfig;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_records = args.iter().any(|a| a == "--records");
    let root = args.iter().find(|a| !a.starts_with("--")).map_or_else(
        || PathBuf::from("/work/shared/fixtures/formats"),
        PathBuf::from,
    );
    let mut files = Vec::new();
    if let Err(e) = collect(&root, &mut files) {
        eprintln!("cannot list {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    files.sort();
    let mut failures = 0;
    for path in &files {
        let Some(config) = config_for(path) else {
            println!("skip  {}", display(&root, path));
            continue;
        };
        let is_pain = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("pain"));
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut errors = Vec::new();
        match config.open(path) {
            Ok(records) => {
                for item in records {
                    match item {
                        Ok(item) => {
                            *counts.entry(item.record.entity()).or_default() += 1;
                            if show_records {
                                let json = serde_json::to_string(&item).unwrap_or_default();
                                println!("      {json}");
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        let ok = if is_pain {
            errors.len() == 1 && errors.iter().all(|e| e.is_fatal()) && counts.is_empty()
        } else {
            errors.is_empty() && counts.get("transaction").is_some_and(|n| *n > 0)
        };
        if !ok {
            failures += 1;
        }
        let summary = counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{}  {}: {}{}",
            if ok { "ok  " } else { "FAIL" },
            display(&root, path),
            if summary.is_empty() {
                "no records"
            } else {
                &summary
            },
            if is_pain { " (expected: rejected)" } else { "" }
        );
        for e in &errors {
            println!(
                "      {}error: {e}",
                if e.is_fatal() { "file " } else { "" }
            );
        }
    }
    println!("{} files, {failures} not as expected", files.len());
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The format of a sample, from its folder.
fn config_for(path: &Path) -> Option<FormatConfig> {
    let folder = path.parent()?.file_name()?.to_string_lossy().into_owned();
    match folder.as_str() {
        "iso20022" => Some(FormatConfig::Camt(CamtConfig::default())),
        "mt940" => Some(FormatConfig::Mt940(Mt940Config::default())),
        "1c" => Some(FormatConfig::OneC(OneCConfig::default())),
        "csv" => {
            let mut c = CsvStatementConfig::new("Дата операции", "Сумма операции");
            c.encoding = Encoding::Windows1251;
            c.columns.currency = Some("Валюта операции".into());
            c.columns.account = Some("Номер карты".into());
            c.columns.value_date = Some("Дата платежа".into());
            c.columns.status = Some("Статус".into());
            c.columns.purpose = Some("Описание".into());
            c.columns.bank_transaction_code = Some("MCC".into());
            Some(FormatConfig::CsvStatement(c))
        }
        _ => None,
    }
}
