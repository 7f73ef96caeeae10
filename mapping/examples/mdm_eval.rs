//! Pair precision, recall and F1 of the matcher's default configuration on FEBRL-layout
//! files: one file is deduplicated, two are linked.
//!
//! ```text
//! cargo run --release -p mapping --example mdm_eval -- FILE [FILE2] [--json]
//! ```
//! The last line of the output is `precision=P recall=R f1=F`.

use std::path::Path;
use std::process::ExitCode;

use mapping::mdm::febrl;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let files: Vec<&Path> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(Path::new)
        .collect();
    if files.is_empty() || files.len() > 2 {
        eprintln!("usage: mdm_eval FILE [FILE2] [--json]");
        return ExitCode::from(2);
    }
    match febrl::eval(&files) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("mdm_eval: cannot render the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mdm_eval: {e}");
            ExitCode::FAILURE
        }
    }
}
