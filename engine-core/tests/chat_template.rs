//! Chat templates rendered by minijinja equal Python jinja2's renderings (as transformers renders
//! them), from fixtures/chat/templates.json (written by scripts/chat_template_fixture.py).

use engine_core::chat::{ChatError, ChatMessage, ChatTemplate};
use engine_core::gguf::GgufFile;
use engine_core::source::MmapSource;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Fixture {
    jinja2: String,
    templates: Vec<TemplateCase>,
}

#[derive(Deserialize)]
struct TemplateCase {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    output: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/chat/templates.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn renderings_equal_python_jinja2() {
    let fx = fixture();
    let mut failures = Vec::new();
    let mut n = 0;
    for t in &fx.templates {
        let tpl = ChatTemplate::new(&t.source, &t.bos_token, &t.eos_token)
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        for (i, case) in t.cases.iter().enumerate() {
            let messages: Vec<ChatMessage> = case
                .messages
                .iter()
                .map(|m| ChatMessage::new(&m.role, &m.content))
                .collect();
            let got = tpl.render(&messages, case.add_generation_prompt);
            n += 1;
            match (&got, &case.output, &case.error) {
                (Ok(out), Some(want), _) if out == want => {}
                (Err(ChatError::Raised(msg)), _, Some(want)) if msg == want => {}
                _ => failures.push(format!(
                    "{} case {i} (add_generation_prompt={}):\n  got  {got:?}\n  want {:?}",
                    t.name,
                    case.add_generation_prompt,
                    case.output.as_ref().or(case.error.as_ref())
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} renderings differ from jinja2 {}:\n{}",
        failures.len(),
        fx.jinja2,
        failures.join("\n")
    );
    println!("{n} renderings equal jinja2 {}'s", fx.jinja2);
}

/// The fixture holds SmolLM2's real template; where the model is at hand, check it is the one the
/// GGUF carries and that `from_metadata` picks up its BOS/EOS texts.
#[test]
fn smollm2_template_comes_from_the_model() {
    let Some(path) = std::env::var_os("SLUICE_TEST_MODEL_SMOLLM2") else {
        println!("SKIP: SLUICE_TEST_MODEL_SMOLLM2 is not set");
        return;
    };
    let src = MmapSource::open(&path).unwrap();
    let m = GgufFile::read(&src).unwrap().metadata;
    let fx = fixture();
    let t = fx.templates.iter().find(|t| t.name == "smollm2").unwrap();
    assert_eq!(
        m.get_str("tokenizer.chat_template").unwrap(),
        Some(t.source.as_str())
    );
    let tpl = ChatTemplate::from_metadata(&m).unwrap();
    let out = tpl.render(&[ChatMessage::user("Hello!")], true).unwrap();
    let want = t
        .cases
        .iter()
        .find(|c| {
            c.add_generation_prompt && c.messages.len() == 1 && c.messages[0].content == "Hello!"
        })
        .and_then(|c| c.output.clone())
        .unwrap();
    assert_eq!(out, want);
}
