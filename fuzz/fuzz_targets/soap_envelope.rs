//! SOAP answers: the streaming record reader, the fault probe and the element converter
//! must end, never panic, stop after their first error, and keep every offset inside the
//! input. Round trip: any text escaped into an element converts back to the same text
//! (line ends normalised, trimmed).

#![no_main]

use adapters::soap::envelope::xml_escape;
use adapters::soap::fault::{MAX_REASON_CHARS, parse_fault};
use adapters::soap::response::{ReadError, RecordReader, element_to_json};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 3] = [
    "GetCustomersChangedSinceResponse/Customers/Customer",
    "GetCursOnDateXMLResponse/GetCursOnDateXMLResult/ValuteData/ValuteCursOnDate",
    "R",
];

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    for path in PATHS {
        let Ok(reader) = RecordReader::new(data, path, None, 1 << 16) else {
            return;
        };
        let mut ended = false;
        for (count, item) in reader.enumerate() {
            assert!(!ended, "an item after the answer ended");
            assert!(count <= data.len(), "the reader does not end");
            match item {
                Ok(r) => assert!(r.offset < len, "record offset outside the input"),
                Err(ReadError::Parse(p)) => {
                    assert!(p.offset <= len, "error offset outside the input");
                    assert!(!p.reason.is_empty());
                    ended = true;
                }
                Err(ReadError::Fault(f)) => {
                    assert!(f.reason.chars().count() <= MAX_REASON_CHARS + 1);
                    ended = true;
                }
            }
        }
    }
    if let Ok(Some(f)) = parse_fault(data) {
        assert!(f.reason.chars().count() <= MAX_REASON_CHARS + 1);
    }
    let _ = element_to_json(data, 1 << 16);

    if let Ok(text) = std::str::from_utf8(data)
        && let Some(escaped) = xml_escape(text)
    {
        let xml = format!("<a>{escaped}</a>");
        let value = element_to_json(xml.as_bytes(), 1 << 20).expect("escaped text parses");
        let expected = text.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(value.as_str(), Some(expected.trim()), "escape round trip");
    }
});
