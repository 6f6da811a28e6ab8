//! `sluice chat` on a synthesized model: through a pseudo-terminal (streaming, `/system`,
//! `/reset`, `/stats`, `/save`, Ctrl-C mid-reply keeping the partial reply, Ctrl-D exiting 0),
//! piped (each line a turn, the same text as `sluice run --chat` fed the history turn by turn),
//! and bad input that must leave the REPL running.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A small llama-family model with the ChatML template and room for long replies.
fn synth(dir: &Path) -> String {
    let path = dir
        .join("chat.gguf")
        .to_str()
        .expect("utf-8 path")
        .to_string();
    let out = sluice()
        .args([
            "synth", "--out", &path, "--layers", "4", "--dim", "256", "--ffn", "512",
        ])
        .args([
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--vocab",
            "600",
            "--context",
            "8192",
        ])
        .args(["--type", "Q8_0", "--seed", "3"])
        .output()
        .expect("running sluice synth");
    ok(out, "synth");
    path
}

const GREEDY: [&str; 6] = ["--temp", "0", "-n", "12", "--threads", "2"];

/// `sluice chat` with `input` on stdin: (stdout, stderr).
fn piped_chat(model: &str, extra: &[&str], input: &str) -> (String, String) {
    let mut child = sluice()
        .args(["chat", "--model", model])
        .args(GREEDY)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sluice chat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    let out = child.wait_with_output().expect("waiting for sluice chat");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (ok(out, "chat"), stderr)
}

/// The conversation file `/save` writes, for `run --history`.
fn history_file(dir: &Path, turns: &[(&str, &str)]) -> String {
    let messages: Vec<serde_json::Value> = turns
        .iter()
        .flat_map(|(user, reply)| {
            [
                serde_json::json!({"role": "user", "content": user}),
                serde_json::json!({"role": "assistant", "content": reply}),
            ]
        })
        .collect();
    let path = dir.join(format!("history{}.json", turns.len()));
    let json =
        serde_json::json!({"format": "sluice-conversation", "version": 1, "messages": messages});
    std::fs::write(&path, json.to_string()).expect("writing the history");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn piped_turns_match_run_chat_fed_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = synth(dir.path());
    let lines = ["Hello there", "Tell me more", "And then?"];
    let (chat, stderr) = piped_chat(&model, &[], &(lines.join("\n") + "\n"));
    let mut turns: Vec<(&str, String)> = Vec::new();
    let mut expected = String::new();
    for line in lines {
        let done: Vec<(&str, &str)> = turns.iter().map(|(u, r)| (*u, r.as_str())).collect();
        let mut run = sluice();
        run.args(["run", "--model", &model, "--chat"]).args(GREEDY);
        if !done.is_empty() {
            run.args(["--history", &history_file(dir.path(), &done)]);
        }
        let out = ok(run.arg(line).output().expect("running sluice run"), "run");
        expected.push_str(&out);
        turns.push((
            line,
            out.strip_suffix('\n').expect("a final newline").to_string(),
        ));
    }
    assert_eq!(chat, expected, "stderr: {stderr}");
    assert!(turns.iter().any(|(_, r)| !r.is_empty()), "{turns:?}");
}

#[test]
fn bad_input_is_reported_and_the_repl_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = synth(dir.path());
    let malformed = dir.path().join("bad.json");
    std::fs::write(&malformed, "{ not json").unwrap();
    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, r#"[{"role": "user", "content": "hi"}]"#).unwrap();
    let long = "word ".repeat(80);
    let input = format!(
        "/load {}\n/load {}\n/load {}\n/frobnicate\n{long}\n/stats\n   \nHello\n/stats\n",
        malformed.display(),
        foreign.display(),
        dir.path().join("missing.json").display(),
    );
    // A context of 64 positions: the long message cannot fit.
    let (out, err) = piped_chat(&model, &["--ctx", "64"], &input);
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(err.contains("not a sluice conversation"), "{err}");
    assert!(err.contains("missing.json"), "{err}");
    assert!(err.contains("unknown command /frobnicate"), "{err}");
    assert!(
        err.contains("the context holds 64") && err.contains("--context-shift"),
        "{err}"
    );
    assert!(
        err.contains("no turn yet"),
        "the overflowing turn was not recorded: {err}"
    );
    // The REPL kept going: the last message got its reply and its stats.
    assert!(err.contains("last turn: prompt"), "{err}");
    assert!(!out.is_empty());
    assert!(!err.contains("panicked"), "{err}");

    // With --context-shift the same long turns run, dropping the oldest ones.
    let input = format!("{long}\n{long}\n{long}\n/stats\n");
    let (_, err) = piped_chat(
        &model,
        &["--ctx", "256", "--context-shift"],
        &input.replace("word ", "hi "),
    );
    assert!(err.contains("context shift: dropped"), "{err}");

    // A template that fails to render is a message, not a crash: a system message in the middle
    // of a loaded history is refused when it is read.
    let odd = dir.path().join("odd.json");
    std::fs::write(
        &odd,
        r#"{"format":"sluice-conversation","version":1,"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]}"#,
    )
    .unwrap();
    let (_, err) = piped_chat(&model, &[], &format!("/load {}\nHi\n", odd.display()));
    assert!(err.contains("only come first"), "{err}");
}

#[cfg(unix)]
mod pty {
    use super::*;
    use expectrl::{ControlCode, Expect, Session};
    use std::time::Duration;

    #[test]
    fn a_terminal_session_streams_stops_on_ctrl_c_and_exits_on_ctrl_d() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = synth(dir.path());
        let saved = dir.path().join("saved.json");
        let mut cmd = sluice();
        cmd.args(["chat", "--model", &model, "--temp", "0", "--threads", "2"])
            .args(["-n", "6000", "--ignore-eog", "--ctx", "8192"]);
        let mut p = Session::spawn(cmd).expect("spawning sluice chat in a pty");
        p.set_expect_timeout(Some(Duration::from_secs(120)));
        p.expect("> ").expect("the prompt");
        p.send_line("/system Be terse.").unwrap();
        p.expect("[system message set]").unwrap();
        p.expect("> ").unwrap();
        p.send_line("Tell me a long story").unwrap();
        // Let the reply stream for a while, then interrupt it.
        std::thread::sleep(Duration::from_millis(1500));
        p.send(ControlCode::EndOfText).unwrap();
        p.expect("stopped (the partial reply stays in the conversation)")
            .expect("Ctrl-C stops the reply");
        p.expect("> ").expect("back at the prompt");
        p.send_line("/stats").unwrap();
        let stats = p.expect("messages]").expect("stats");
        let stats = String::from_utf8_lossy(stats.before()).into_owned();
        assert!(stats.contains("stop: cancelled"), "{stats}");
        let generated: usize = stats
            .split(" generated")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no generated count in {stats}"));
        assert!((1..6000).contains(&generated), "{stats}");
        p.send_line(format!("/save {}", saved.display())).unwrap();
        p.expect("saved 3 messages").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
        let messages = json["messages"].as_array().unwrap();
        assert_eq!(messages[0]["content"], "Be terse.");
        assert_eq!(messages[1]["content"], "Tell me a long story");
        assert_eq!(messages[2]["role"], "assistant");
        assert!(
            !messages[2]["content"].as_str().unwrap().is_empty(),
            "the partial reply was kept"
        );
        p.send_line("/reset").unwrap();
        p.expect("[conversation cleared (system message kept)]")
            .unwrap();
        p.send_line("/stats").unwrap();
        p.expect("| 1 messages]")
            .expect("only the system message left");
        p.expect("> ").unwrap();
        p.send(ControlCode::EndOfTransmission).unwrap();
        let status = p.get_process().wait().expect("waiting for sluice chat");
        assert!(
            matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }
}
