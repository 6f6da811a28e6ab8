//! Layer streaming through the `sluice` binary on a synthesized model: `run` under a device budget
//! prints the same greedy text as the fully resident run (also from a throttled file source), the
//! residency plan is printed by `inspect --plan`, and a budget below one layer is a clear error.
//! And the other side of it: a resident CPU model costs about its file (weights borrowed from
//! the mapping), which `bench` checks against its memory rule.

use std::path::Path;
use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("running sluice")
}

fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// An 8-block model of about 4.3 MB with a tied head.
fn synth(dir: &Path) -> String {
    let path = dir.join("stream.gguf");
    let path = path.to_str().expect("utf-8 path").to_string();
    ok(&[
        "synth",
        "--out",
        &path,
        "--layers",
        "8",
        "--dim",
        "256",
        "--ffn",
        "512",
        "--heads",
        "4",
        "--kv-heads",
        "2",
        "--vocab",
        "2000",
        "--type",
        "Q4_0",
        "--tied",
        "--seed",
        "5",
    ]);
    path
}

#[test]
fn streamed_runs_print_the_resident_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = synth(dir.path());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--model",
            &model,
            "--temp",
            "0",
            "-n",
            "24",
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        args.push("Streaming layers keeps memory bounded");
        ok(&args)
    };
    let resident = run(&[]);
    assert!(!resident.trim().is_empty());
    for extra in [
        &["--device-mem", "1MiB"][..],
        &["--device-mem", "1MiB", "--prefetch", "debug"],
        &[
            "--device-mem",
            "1MiB",
            "--prefetch",
            "auto",
            "--source",
            "file",
        ],
        &[
            "--device-mem",
            "1500KiB",
            "--throttle",
            "200MB",
            "--throttle-latency-ms",
            "0.2",
        ],
    ] {
        assert_eq!(run(extra), resident, "sluice run {extra:?}");
    }
}

#[test]
fn inspect_plan_shows_pinned_and_streamed_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = synth(dir.path());
    let plan = ok(&["inspect", &model, "--plan", "--device-mem", "1500KiB"]);
    assert!(plan.contains("streaming:"), "{plan}");
    let ends = |what: &str| plan.lines().filter(|l| l.ends_with(what)).count();
    // 1500 KiB holds a window of three ~326 KiB blocks and one pinned block besides.
    assert_eq!(ends("  pinned"), 1, "{plan}");
    assert_eq!(ends("  streamed"), 8, "{plan}");
    assert_eq!(ends("  host"), 1, "{plan}");
    let fits = ok(&["inspect", &model, "--plan", "--device-mem", "1GiB"]);
    assert!(fits.contains("fits"), "{fits}");
}

#[test]
fn a_budget_below_one_layer_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = synth(dir.path());
    let out = sluice(&["run", "--model", &model, "--device-mem", "64KiB", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("device budget of 65536 bytes is too small"),
        "{err}"
    );
    let out = sluice(&["run", "--model", &model, "--device-mem", "lots", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));
}

/// A 300 MB model resident on the CPU: `bench`'s peak RSS stays within the file, its KV cache
/// and 64 MiB (a copy of the weights would need the file twice).
#[test]
fn a_resident_bench_costs_about_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.gguf");
    let path = path.to_str().expect("utf-8 path");
    ok(&[
        "synth",
        "--out",
        path,
        "--preset",
        "7b",
        "--layers",
        "8",
        "--dim",
        "2048",
        "--ffn",
        "5632",
        "--heads",
        "16",
        "--kv-heads",
        "16",
        "--context",
        "512",
        "--type",
        "Q4_0",
    ]);
    let out = ok(&[
        "bench",
        "--model",
        path,
        "--threads",
        "2",
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "4",
        "--reps",
        "1",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("bench JSON");
    let m = &report["memory"];
    let file = m["model_file_bytes"].as_u64().expect("file bytes");
    let bound = m["rss_bound_bytes"].as_u64().expect("bound");
    assert!(file > 250_000_000, "{m}");
    assert_eq!(
        bound,
        file + m["kv_cache_bytes"].as_u64().unwrap() + (64 << 20)
    );
    let Some(rss) = report["peak_rss_bytes"].as_u64() else {
        println!("skipped: no peak RSS on this platform");
        return;
    };
    println!("peak RSS {rss} of a bound of {bound} ({file} of file)");
    assert!(rss <= bound, "peak RSS {rss} over {bound}: {m}");
    assert_eq!(m["within_bound"], true);
}
