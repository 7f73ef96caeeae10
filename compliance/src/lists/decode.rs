//! Reading list files into text: byte-level decoding rules shared by the CSV loaders.

use std::path::Path;

use super::ListError;

/// Reads a whole file (list files are a few MB; the large XML lists are streamed instead).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ListError> {
    std::fs::read(path).map_err(|e| ListError::io(path, e))
}

/// Strips a UTF-8 byte-order mark and trailing DOS end-of-file marks (0x1A), which OFAC's
/// legacy files carry.
fn trim_markers(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] == 0x1A {
        end -= 1;
    }
    &bytes[..end]
}

/// Decodes each line as UTF-8 and, where that fails, as Latin-1 (every byte one character), so
/// one badly encoded line never loses the others. Line breaks are kept as `\n` (a `\r` before
/// them is dropped), so line numbers stay those of the file. Returns the text and how many
/// lines needed the fallback.
pub(crate) fn utf8_or_latin1_lines(bytes: &[u8]) -> (String, usize) {
    let bytes = trim_markers(bytes);
    let mut out = String::with_capacity(bytes.len());
    let mut fallback = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(s) => out.push_str(s),
            Err(_) => {
                fallback += 1;
                out.extend(line.iter().map(|&b| char::from(b)));
            }
        }
    }
    (out, fallback)
}

/// The text encodings a national or own list may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    Utf8,
    Windows1251,
}

/// Decodes a file that is either UTF-8 (with or without a byte-order mark) or windows-1251, the
/// usual encoding of Russian bank files. Valid UTF-8 wins: windows-1251 Cyrillic text is
/// practically never valid UTF-8, while the reverse guess would garble every UTF-8 file.
pub(crate) fn utf8_or_windows1251(bytes: &[u8]) -> (String, TextEncoding) {
    let bytes = trim_markers(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), TextEncoding::Utf8),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1251.decode(bytes);
            (text.into_owned(), TextEncoding::Windows1251)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_fallback_is_per_line() {
        let bytes = b"1,\"ok \xC3\xA9\"\r\n2,\"bad \xE9\"\n3,\"ok\"\x1A";
        let (text, fallback) = utf8_or_latin1_lines(bytes);
        assert_eq!(text, "1,\"ok é\"\n2,\"bad é\"\n3,\"ok\"");
        assert_eq!(fallback, 1);
    }

    #[test]
    fn windows1251_detected_when_not_utf8() {
        let (text, enc) = utf8_or_windows1251(b"\xC8\xE2\xE0\xED");
        assert_eq!(text, "Иван");
        assert_eq!(enc, TextEncoding::Windows1251);
        let (text, enc) = utf8_or_windows1251("\u{feff}Иван".as_bytes());
        assert_eq!(text, "Иван");
        assert_eq!(enc, TextEncoding::Utf8);
    }
}
