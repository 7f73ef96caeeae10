//! `hub demo`, the README's main job, exits 0 and prints its summary.

use std::process::Command;

use hub_tests::hub::hub_bin;

#[test]
fn demo_runs_the_main_job_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(hub_bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "10000 customers",
        "rows read",
        "delivered to CRM",
        "quarantined",
        "re-dropped file     1",
        "version regressions 0",
        "sync lag            p50",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
}
