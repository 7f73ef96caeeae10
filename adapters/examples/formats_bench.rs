//! Throughput and memory of the bank-format readers on large generated files.
//!
//! `cargo run --release -p adapters --example formats_bench -- [--size-mb N] [--format F]
//! [--dir D]`
//!
//! For each format (camt, mt940, onec, csv; or only `--format F`) writes a file of about
//! N MB (default 200) into D (default the system temp folder), reads it with the format's
//! reader counting records and errors, prints MB/s, and deletes the file. Every generated
//! record is valid, so any error is reported and makes the exit code 1. For peak memory, run
//! one format on a 1 GB file under `/usr/bin/time -v` and read "Maximum resident set size":
//! `/usr/bin/time -v target/release/examples/formats_bench --format camt --size-mb 1024`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use adapters::file_drop::Encoding;
use adapters::formats::FormatConfig;
use adapters::formats::camt::CamtConfig;
use adapters::formats::csv_statement::CsvStatementConfig;
use adapters::formats::mt940::Mt940Config;
use adapters::formats::onec::OneCConfig;

const FORMATS: [&str; 4] = ["camt", "mt940", "onec", "csv"];

/// Deletes the generated file however the run ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size_mb: u64 = value("--size-mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = value("--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let formats: Vec<&str> = match value("--format") {
        Some(f) => FORMATS.iter().copied().filter(|x| *x == f).collect(),
        None => FORMATS.to_vec(),
    };
    if formats.is_empty() {
        eprintln!("--format must be one of {}", FORMATS.join(", "));
        return ExitCode::FAILURE;
    }
    let target = size_mb << 20;
    let mut failed = false;
    println!("format  file MB   records   errors   gen s   parse s    MB/s");
    for format in formats {
        let path = dir.join(format!("formats_bench_{}.{format}", std::process::id()));
        let _guard = TempFile(path.clone());
        let started = Instant::now();
        if let Err(e) = generate(format, &path, target) {
            eprintln!("{format}: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        let gen_secs = started.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let config = config(format);
        let started = Instant::now();
        let (records, errors, first_error) = match config.open(&path) {
            Ok(items) => {
                let (mut records, mut errors, mut first) = (0u64, 0u64, None);
                for item in items {
                    match item {
                        Ok(_) => records += 1,
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert(e.to_string());
                        }
                    }
                }
                (records, errors, first)
            }
            Err(e) => (0, 1, Some(e.to_string())),
        };
        let parse_secs = started.elapsed().as_secs_f64();
        let mb = bytes as f64 / f64::from(1 << 20);
        println!(
            "{format:<6} {mb:>8.1} {records:>9} {errors:>8} {gen_secs:>7.1} {parse_secs:>9.2} {:>7.1}",
            mb / parse_secs
        );
        if let Some(e) = first_error {
            eprintln!("  first error: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn config(format: &str) -> FormatConfig {
    match format {
        "camt" => FormatConfig::Camt(CamtConfig::default()),
        "mt940" => FormatConfig::Mt940(Mt940Config::default()),
        "onec" => FormatConfig::OneC(OneCConfig::default()),
        _ => {
            let mut c = CsvStatementConfig::new("Дата операции", "Сумма операции");
            c.encoding = Encoding::Windows1251;
            c.columns.currency = Some("Валюта операции".into());
            c.columns.account = Some("Номер карты".into());
            c.columns.status = Some("Статус".into());
            c.columns.purpose = Some("Описание".into());
            c.columns.counterparty = Some("Контрагент".into());
            FormatConfig::CsvStatement(c)
        }
    }
}

/// Writes about `target` bytes of `format` to `path`.
fn generate(format: &str, path: &Path, target: u64) -> std::io::Result<()> {
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 20, File::create(path)?),
        written: 0,
    };
    match format {
        "camt" => camt(&mut out, target)?,
        "mt940" => mt940(&mut out, target)?,
        "onec" => onec(&mut out, target)?,
        _ => csv(&mut out, target)?,
    }
    out.inner.flush()
}

struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, text: &str) -> std::io::Result<()> {
        self.written += text.len() as u64;
        self.inner.write_all(text.as_bytes())
    }

    fn put_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Deterministic amounts in kopecks / cents.
fn amount(i: u64) -> (u64, u64) {
    let minor = (i.wrapping_mul(7919) % 9_999_999) + 1;
    (minor / 100, minor % 100)
}

const NAMES: [&str; 4] = [
    "Lindenhof GmbH",
    "Kaffeerösterei M&M",
    "Stadtwerke Nord",
    "Hotel Zur Post",
];
const RU_NAMES: [&str; 4] = [
    "ООО \"Ромашка\"",
    "ИП Сидоров П.П.",
    "АО \"Берёзка\"",
    "ООО Клён",
];

fn camt<W: Write>(out: &mut Counting<W>, target: u64) -> std::io::Result<()> {
    out.put("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">\n<BkToCstmrStmt>\n<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2024-03-01T08:00:00Z</CreDtTm></GrpHdr>\n")?;
    let mut i = 0u64;
    let mut stmt = 0u64;
    while out.written < target {
        stmt += 1;
        out.put(&format!(
            "<Stmt><Id>S{stmt}</Id><ElctrncSeqNb>{stmt}</ElctrncSeqNb><CreDtTm>2024-03-01T08:00:00Z</CreDtTm>\n<Acct><Id><IBAN>DE02100100100006{:06}</IBAN></Id><Ccy>EUR</Ccy><Ownr><Nm>Bench Owner</Nm></Ownr></Acct>\n<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-02-29</Dt></Dt></Bal>\n",
            stmt % 1_000_000
        ))?;
        for _ in 0..500 {
            i += 1;
            let (major, minor) = amount(i);
            let (dc, party, acct_tag) = if i.is_multiple_of(3) {
                ("DBIT", "Cdtr", "CdtrAcct")
            } else {
                ("CRDT", "Dbtr", "DbtrAcct")
            };
            out.put(&format!(
                "<Ntry>\n <Amt Ccy=\"EUR\">{major}.{minor:02}</Amt>\n <CdtDbtInd>{dc}</CdtDbtInd>\n <Sts><Cd>BOOK</Cd></Sts>\n <BookgDt><DtTm>2024-02-29T10:15:00+01:00</DtTm></BookgDt>\n <ValDt><Dt>2024-02-29</Dt></ValDt>\n <AcctSvcrRef>REF{i}</AcctSvcrRef>\n <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>\n <NtryDtls><TxDtls>\n  <Refs><EndToEndId>E2E-{i}</EndToEndId></Refs>\n  <RltdPties><{party}><Pty><Nm>{}</Nm><PstlAdr><Ctry>DE</Ctry></PstlAdr></Pty></{party}><{acct_tag}><Id><IBAN>AT6119043002345{:05}</IBAN></Id></{acct_tag}></RltdPties>\n  <RltdAgts><DbtrAgt><FinInstnId><BICFI>TESTATWWXXX</BICFI></FinInstnId></DbtrAgt></RltdAgts>\n  <RmtInf><Ustrd>Invoice {i} for services rendered</Ustrd></RmtInf>\n </TxDtls></NtryDtls>\n</Ntry>\n",
                NAMES[(i % 4) as usize].replace('&', "&amp;"),
                i % 100_000
            ))?;
        }
        out.put("<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-02-29</Dt></Dt></Bal>\n</Stmt>\n")?;
    }
    out.put("</BkToCstmrStmt>\n</Document>\n")
}

fn mt940<W: Write>(out: &mut Counting<W>, target: u64) -> std::io::Result<()> {
    let mut i = 0u64;
    let mut stmt = 0u64;
    while out.written < target {
        stmt += 1;
        out.put(&format!(
            "{{1:F01TESTBANKAXXX0000000000}}{{2:O9401200240301TESTBANKAXXX00000000002403011200N}}{{4:\r\n:20:STMT{stmt}\r\n:25:TESTBANKA/4081781{:06}\r\n:28C:{stmt}/1\r\n:60F:C240229EUR1000,00\r\n",
            stmt % 1_000_000
        ))?;
        for _ in 0..200 {
            i += 1;
            let (major, minor) = amount(i);
            let dc = if i.is_multiple_of(3) { 'D' } else { 'C' };
            out.put(&format!(
                ":61:2403010301{dc}{major},{minor:02}NTRFREF{i}//B{i}\r\nSupplementary {i}\r\n:86:Invoice {i} for services rendered\r\n{}\r\nDE02100100100006820101\r\n",
                NAMES[(i % 4) as usize]
            ))?;
        }
        out.put(":62F:C240301EUR1170,50\r\n:64:C240301EUR1170,50\r\n-}\r\n")?;
    }
    Ok(())
}

fn onec<W: Write>(out: &mut Counting<W>, target: u64) -> std::io::Result<()> {
    let cp1251 = |s: &str| encoding_rs::WINDOWS_1251.encode(s).0.into_owned();
    let account = "40702810900000000001";
    out.put_bytes(&cp1251(&format!(
        "1CClientBankExchange\r\nВерсияФормата=1.03\r\nКодировка=Windows\r\nОтправитель=Банк\r\nДатаСоздания=05.03.2024\r\nВремяСоздания=09:30:00\r\nДатаНачала=01.03.2024\r\nДатаКонца=04.03.2024\r\nРасчСчет={account}\r\nСекцияРасчСчет\r\nДатаНачала=01.03.2024\r\nДатаКонца=04.03.2024\r\nРасчСчет={account}\r\nНачальныйОстаток=100.00\r\nВсегоПоступило=50.00\r\nВсегоСписано=25.00\r\nКонечныйОстаток=125.00\r\nКонецРасчСчет\r\n"
    )))?;
    let mut i = 0u64;
    while out.written < target {
        i += 1;
        let (major, minor) = amount(i);
        let other = format!("40802810300000{:06}", i % 1_000_000);
        let (payer, payee, dates) = if i.is_multiple_of(3) {
            (
                account.to_owned(),
                other,
                "ДатаСписано=02.03.2024\r\nДатаПоступило=",
            )
        } else {
            (
                other,
                account.to_owned(),
                "ДатаСписано=\r\nДатаПоступило=02.03.2024",
            )
        };
        let name = RU_NAMES[(i % 4) as usize];
        out.put_bytes(&cp1251(&format!(
            "СекцияДокумент=Платежное поручение\r\nНомер={i}\r\nДата=01.03.2024\r\nСумма={major}.{minor:02}\r\nПлательщикСчет={payer}\r\n{dates}\r\nПлательщик=ИНН 7701000001 {name}\r\nПлательщикИНН=7701000001\r\nПлательщик1={name}\r\nПлательщикРасчСчет={payer}\r\nПлательщикБанк1=ПАО БАНК\r\nПлательщикБанк2=г. Москва\r\nПлательщикБИК=044525000\r\nПлательщикКорсчет=30101810400000000225\r\nПолучательСчет={payee}\r\nПолучатель1=ООО \"Ландыш\"\r\nПолучательИНН=7702000002\r\nПолучательРасчСчет={payee}\r\nПолучательБанк1=ПАО БАНК\r\nПолучательБИК=044525000\r\nВидОплаты=01\r\nОчередность=5\r\nНазначениеПлатежа=Оплата по счёту №{i} от 28.02.2024, НДС не облагается\r\nКонецДокумента\r\n"
        )))?;
    }
    out.put_bytes(&cp1251("КонецФайла\r\n"))
}

fn csv<W: Write>(out: &mut Counting<W>, target: u64) -> std::io::Result<()> {
    let cp1251 = |s: &str| encoding_rs::WINDOWS_1251.encode(s).0.into_owned();
    out.put_bytes(&cp1251(
        "Дата операции;Номер карты;Статус;Сумма операции;Валюта операции;Контрагент;Описание\r\n",
    ))?;
    let mut i = 0u64;
    let mut line = String::new();
    while out.written < target {
        i += 1;
        let (major, minor) = amount(i);
        let sign = if i.is_multiple_of(3) { "" } else { "-" };
        let thousands = if major >= 1000 {
            format!("{} {:03}", major / 1000, major % 1000)
        } else {
            major.to_string()
        };
        line.clear();
        line.push_str(&format!(
            "\"{:02}.03.2024 11:20:00\";*{:04};OK;{sign}{thousands},{minor:02};RUB;{};\"Покупка №{i}, магазин у дома\"\r\n",
            1 + i % 28,
            i % 10_000,
            RU_NAMES[(i % 4) as usize].replace('"', ""),
        ));
        out.put_bytes(&cp1251(&line))?;
    }
    Ok(())
}
