//! Throughput and memory of the streaming SOAP answer reader.
//!
//! ```text
//! cargo build --release -p adapters --example soap_bench
//! /usr/bin/time -v target/release/examples/soap_bench --mb 200
//! target/release/examples/soap_bench --mb 200 --write /var/tmp/answer.xml   # generate only
//! /usr/bin/time -v target/release/examples/soap_bench --file /var/tmp/answer.xml
//! ```
//!
//! Without `--file`, a SOAP 1.1 answer of about `--mb` megabytes of customer records
//! (Cyrillic names, attributes, nested and repeated elements, a namespace prefix) is written
//! to a temporary file first (not timed); then the file is read record by record, each
//! converted to JSON, as the SOAP source does. Prints records, bytes, seconds, records/s
//! and MB/s; peak memory is what `/usr/bin/time -v` reports as "Maximum resident set
//! size".

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use adapters::soap::RecordReader;

const RECORD_PATH: &str = "GetCustomersChangedSinceResponse/Customers/Customer";

struct Args {
    mb: u64,
    file: Option<PathBuf>,
    write: Option<PathBuf>,
    record_path: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        mb: 200,
        file: None,
        write: None,
        record_path: RECORD_PATH.to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--mb" => out.mb = value()?.parse().map_err(|e| format!("--mb: {e}"))?,
            "--file" => out.file = Some(PathBuf::from(value()?)),
            "--write" => out.write = Some(PathBuf::from(value()?)),
            "--record-path" => out.record_path = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

/// Writes about `mb` megabytes of customer records in a SOAP 1.1 envelope.
fn generate(path: &std::path::Path, mb: u64) -> std::io::Result<u64> {
    const NAMES: [&str; 6] = [
        "Иванов",
        "Смирнова",
        "Кузнецов",
        "Попова",
        "Васильев",
        "Петрова",
    ];
    const FIRST: [&str; 4] = ["Александр", "Мария", "Дмитрий", "Анна"];
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(
        w,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Header/><soapenv:Body><cb:GetCustomersChangedSinceResponse xmlns:cb=\"urn:corebank:customers:v1\"><cb:Page>1</cb:Page><cb:Customers>"
    )?;
    let target = mb << 20;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < target {
        let record = format!(
            "<cb:Customer id=\"C{id:08}\" version=\"{v}\" segment=\"mass\"><cb:Seq>{id}</cb:Seq><cb:ChangedAt>2024-01-01T{h:02}:{m:02}:{s:02}.000Z</cb:ChangedAt><cb:Type>FL</cb:Type><cb:Status>active</cb:Status><cb:Inn>77{inn:010}</cb:Inn><cb:Person><cb:LastName>{last}</cb:LastName><cb:FirstName>{first}</cb:FirstName><cb:MiddleName>Сергеевич</cb:MiddleName><cb:Passport>45{p:02} {pn:06}</cb:Passport><cb:BirthDate>1980-0{mo}-1{d}</cb:BirthDate></cb:Person><cb:Contacts><cb:Phone kind=\"mobile\">+7916{ph:07}</cb:Phone><cb:Phone kind=\"home\">+7495{ph:07}</cb:Phone><cb:Email>client{id}@example.ru</cb:Email></cb:Contacts><cb:Address><cb:Text>г. Москва, ул. Ленина, д. {house}, кв. {flat} &amp; офис</cb:Text><cb:PostalCode>101{zip:03}</cb:PostalCode></cb:Address></cb:Customer>\n",
            id = i + 1,
            v = 1 + i % 3,
            h = (i / 3600) % 24,
            m = (i / 60) % 60,
            s = i % 60,
            inn = i % 10_000_000_000,
            last = NAMES[(i % 6) as usize],
            first = FIRST[(i % 4) as usize],
            p = i % 100,
            pn = i % 1_000_000,
            mo = 1 + i % 9,
            d = i % 10,
            ph = i % 10_000_000,
            house = 1 + i % 150,
            flat = 1 + i % 300,
            zip = i % 1000,
        );
        w.write_all(record.as_bytes())?;
        written += record.len() as u64;
        i += 1;
    }
    writeln!(
        w,
        "</cb:Customers></cb:GetCustomersChangedSinceResponse></soapenv:Body></soapenv:Envelope>"
    )?;
    w.flush()?;
    Ok(i)
}

fn main() -> Result<(), String> {
    let args = args()?;
    if let Some(p) = &args.write {
        let n = generate(p, args.mb).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        eprintln!("wrote {n} records to {}", p.display());
        return Ok(());
    }
    let _tmp;
    let path = match &args.file {
        Some(p) => p.clone(),
        None => {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
            let p = dir.path().join("answer.xml");
            let t = Instant::now();
            let n =
                generate(&p, args.mb).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            eprintln!(
                "generated {n} records in {:.1} s → {}",
                t.elapsed().as_secs_f64(),
                p.display()
            );
            _tmp = dir;
            p
        }
    };
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = RecordReader::new(
        BufReader::with_capacity(256 * 1024, file),
        &args.record_path,
        None,
        16 << 20,
    )?;
    let started = Instant::now();
    let (mut records, mut keys) = (0u64, 0usize);
    for item in reader {
        let r = item.map_err(|e| format!("{}: {e}", path.display()))?;
        records += 1;
        // Touch the converted value, as mapping does.
        keys += r.value.as_object().map_or(0, serde_json::Map::len);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "records {records}  bytes {bytes}  seconds {secs:.2}  records/s {:.0}  MB/s {:.1}  (fields seen {keys})",
        records as f64 / secs,
        bytes as f64 / (1 << 20) as f64 / secs
    );
    Ok(())
}
