//! What every format target checks: the reader ends, nothing follows a file-level error,
//! every error names the file and gives a reason. A panic is a crash libFuzzer reports.

use adapters::formats::FormatConfig;

pub fn check(config: &FormatConfig, data: &[u8]) {
    let Ok(records) = config.from_bytes("fuzz", data.to_vec()) else {
        return;
    };
    let mut fatal_seen = false;
    let limit = data.len() * 4 + 16;
    for (count, item) in records.enumerate() {
        assert!(count <= limit, "the reader does not end");
        assert!(!fatal_seen, "an item after a file-level error");
        if let Err(e) = item {
            assert_eq!(e.file, "fuzz");
            assert!(!e.reason.is_empty());
            fatal_seen = e.is_fatal();
        }
    }
}
