use crate::file_drop::Encoding;
use crate::formats::FormatConfig;

/// The format guide, whose TOML examples must all parse and validate.
const GUIDE: &str = include_str!("../../../../docs/file-formats.md");

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_in_the_guide_parses_and_validates() {
    let blocks = toml_blocks(GUIDE);
    assert!(blocks.len() >= 5, "one example per format");
    let mut formats = Vec::new();
    for block in &blocks {
        let config: FormatConfig = toml::from_str(block)
            .unwrap_or_else(|e| panic!("example does not parse: {e}\n{block}"));
        config
            .validate()
            .unwrap_or_else(|e| panic!("example does not validate: {e}\n{block}"));
        formats.push(std::mem::discriminant(&config));
    }
    formats.dedup();
    assert!(formats.len() >= 5, "every format has an example");
}

#[test]
fn unknown_fields_and_formats_are_refused() {
    assert!(toml::from_str::<FormatConfig>("format = \"camt\"\nversion = 8\n").is_err());
    assert!(toml::from_str::<FormatConfig>("format = \"mt941\"\n").is_err());
    let c: FormatConfig = toml::from_str("format = \"one_c\"\nencoding = \"cp866\"\n").unwrap();
    assert_eq!(
        c,
        FormatConfig::OneC(crate::formats::onec::OneCConfig {
            encoding: Some(Encoding::Cp866)
        })
    );
    let c: FormatConfig = toml::from_str("format = \"mt940\"\n").unwrap();
    assert_eq!(c, FormatConfig::Mt940(Default::default()));
}

#[test]
fn cp866_is_a_file_drop_encoding() {
    #[derive(serde::Deserialize)]
    struct E {
        encoding: Encoding,
    }
    for name in ["cp866", "ibm866", "IBM866", "dos"] {
        let e: E = toml::from_str(&format!("encoding = \"{name}\"")).unwrap();
        assert_eq!(e.encoding, Encoding::Cp866);
    }
    assert_eq!(Encoding::Cp866.to_string(), "cp866");
    assert!(Encoding::Cp866.is_single_byte());
}
