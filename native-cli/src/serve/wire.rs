//! The requests the server takes, as OpenAI's clients send them, and their checks: each field
//! of the wrong type, out of range or unsupported is a 400 naming it.

use super::error::ApiError;
use engine_core::chat::ChatMessage;
use engine_core::engine::GenerateOptions;
use engine_core::sample::SamplerConfig;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Most alternatives `top_logprobs` (chat) or `logprobs` (completions) may ask for.
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Most stop strings a request may give.
pub const MAX_STOPS: usize = 16;

/// Parses a JSON body into `T`, naming the field whose value has the wrong type.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            None,
            "the request body is empty; send JSON",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::invalid(None, format!("the request body is not UTF-8: {e}")))?;
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let param = (path != "." && !path.is_empty()).then_some(path);
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("the request body is not valid JSON: {inner}")
        } else {
            match &param {
                Some(p) => format!("invalid value for '{p}': {inner}"),
                None => format!("invalid request: {inner}"),
            }
        };
        ApiError::invalid(param, message)
    })
}

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A message's content: a string, or a list of parts of which only text is understood.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// What both endpoints share: sampling, length, stops, streaming. Parsed from the same body as
/// the endpoint's own fields (not flattened into them, so a wrong type names its field).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub min_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<i64>,
    /// llama.cpp's multiplicative penalty (1: off).
    #[serde(default)]
    pub repeat_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<OneOrMany>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub n: Option<i64>,
    /// Keep generating through end-of-generation tokens (benchmarks; llama.cpp's name).
    #[serde(default)]
    pub ignore_eos: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<i64>,
}

/// A completion prompt: text or token ids, alone or in a one-element list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WirePrompt {
    Text(String),
    Tokens(Vec<u32>),
    Texts(Vec<String>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: WirePrompt,
    #[serde(default)]
    pub logprobs: Option<i64>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub best_of: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    /// Add BOS where the model's tokenizer asks for it.
    #[serde(default = "yes")]
    pub add_special: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<u32>,
}

/// The prompt of a completion request, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

impl CompletionRequest {
    pub fn prompt(&self) -> Result<PromptInput, ApiError> {
        let one = |n: usize| {
            ApiError::invalid(
                Some("prompt".to_string()),
                format!("a list of {n} prompts is not supported; send one prompt per request"),
            )
        };
        match &self.prompt {
            WirePrompt::Text(t) => Ok(PromptInput::Text(t.clone())),
            WirePrompt::Tokens(t) => Ok(PromptInput::Tokens(t.clone())),
            WirePrompt::Texts(v) if v.len() == 1 => Ok(PromptInput::Text(v[0].clone())),
            WirePrompt::TokenLists(v) if v.len() == 1 => Ok(PromptInput::Tokens(v[0].clone())),
            WirePrompt::Texts(v) => Err(one(v.len())),
            WirePrompt::TokenLists(v) => Err(one(v.len())),
        }
    }

    /// Checks the fields only completions have; the number of alternatives asked for.
    pub fn logprobs(&self) -> Result<Option<usize>, ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid(
                Some("echo".to_string()),
                "echo is not supported",
            ));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid(
                Some("suffix".to_string()),
                "suffix is not supported",
            ));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(ApiError::invalid(
                Some("best_of".to_string()),
                "best_of must be 1",
            ));
        }
        top_count("logprobs", self.logprobs)
    }
}

impl ChatRequest {
    /// The messages, checked: known roles, text content, at least one.
    pub fn messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages".to_string()),
                "'messages' must hold at least one message",
            ));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let param = |field: &str| Some(format!("messages[{i}].{field}"));
                let role = match m.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(ApiError::invalid(
                            param("role"),
                            format!(
                                "unknown role '{other}' in messages[{i}]; expected system, \
                                 developer, user or assistant"
                            ),
                        ))
                    }
                };
                let content = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for part in parts {
                            match (part.kind.as_str(), &part.text) {
                                ("text", Some(t)) => text.push_str(t),
                                (kind, _) => {
                                    return Err(ApiError::invalid(
                                        param("content"),
                                        format!(
                                            "content parts of type '{kind}' are not supported; \
                                             only text"
                                        ),
                                    ))
                                }
                            }
                        }
                        text
                    }
                };
                if content.is_empty() && role != "assistant" {
                    return Err(ApiError::invalid(
                        param("content"),
                        format!("messages[{i}] has no content"),
                    ));
                }
                Ok(ChatMessage::new(role, content))
            })
            .collect()
    }

    pub fn logprobs(&self) -> Result<Option<usize>, ApiError> {
        match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (false, Some(n)) if n > 0 => Err(ApiError::invalid(
                Some("top_logprobs".to_string()),
                "top_logprobs needs logprobs: true",
            )),
            (false, _) => Ok(None),
            (true, n) => Ok(Some(top_count("top_logprobs", n)?.unwrap_or(0))),
        }
    }
}

fn top_count(param: &str, n: Option<i64>) -> Result<Option<usize>, ApiError> {
    match n {
        None => Ok(None),
        Some(n) if (0..=i64::from(MAX_TOP_LOGPROBS)).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::invalid(
            Some(param.to_string()),
            format!("{param} must be between 0 and {MAX_TOP_LOGPROBS}, not {n}"),
        )),
    }
}

/// How a checked request is to be answered.
#[derive(Debug, Clone)]
pub struct Checked {
    pub options: GenerateOptions,
    pub stream: bool,
    pub include_usage: bool,
}

impl Sampling {
    /// Checks the shared fields against a prompt of `prompt_tokens` in a `context`-position
    /// slot. Unset sampling fields take OpenAI's defaults (temperature 1, no top-k/top-p/min-p
    /// cut); an unset length runs to the end of the context.
    pub fn check(&self, prompt_tokens: usize, context: usize) -> Result<Checked, ApiError> {
        let bad =
            |param: &str, message: String| Err(ApiError::invalid(Some(param.into()), message));
        if let Some(n) = self.n {
            if n != 1 {
                return bad(
                    "n",
                    format!("n must be 1 (one choice per request), not {n}"),
                );
            }
        }
        for (param, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return bad(
                    param,
                    format!("{param} is not supported; leave it out or send 0 (repeat_penalty is)"),
                );
            }
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !temperature.is_finite() || !(0.0..=2.0).contains(&temperature) {
            return bad(
                "temperature",
                format!("temperature must be between 0 and 2, not {temperature}"),
            );
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return bad("top_p", format!("top_p must be in (0, 1], not {top_p}"));
        }
        let min_p = self.min_p.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&min_p) {
            return bad("min_p", format!("min_p must be in [0, 1], not {min_p}"));
        }
        let top_k = self.top_k.unwrap_or(0);
        if top_k < 0 {
            return bad(
                "top_k",
                format!("top_k must be 0 (off) or more, not {top_k}"),
            );
        }
        let repeat_penalty = self.repeat_penalty.unwrap_or(1.0);
        if !(repeat_penalty.is_finite() && repeat_penalty > 0.0) {
            return bad(
                "repeat_penalty",
                format!("repeat_penalty must be positive, not {repeat_penalty}"),
            );
        }
        if prompt_tokens > context {
            return Err(ApiError::invalid(
                Some("messages".into()),
                format!(
                    "the prompt is {prompt_tokens} tokens, more than the {context} the context holds"
                ),
            )
            .with_code("context_length_exceeded"));
        }
        let room = context - prompt_tokens;
        let (param, asked) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => ("max_completion_tokens", Some(n)),
            (None, n) => ("max_tokens", n),
        };
        let max_tokens = match asked {
            None => room.max(1),
            Some(n) if n < 1 => return bad(param, format!("{param} must be at least 1, not {n}")),
            Some(n) if n as u64 > room as u64 => {
                return Err(ApiError::invalid(
                    Some(param.into()),
                    format!(
                        "{param} is {n}, but the prompt's {prompt_tokens} tokens leave {room} of \
                         the {context}-token context"
                    ),
                )
                .with_code("context_length_exceeded"))
            }
            Some(n) => n as usize,
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        if stop.len() > MAX_STOPS {
            return bad(
                "stop",
                format!("at most {MAX_STOPS} stop strings, not {}", stop.len()),
            );
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let stream = self.stream.unwrap_or(false);
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Checked {
            options: GenerateOptions {
                sampler: SamplerConfig {
                    temperature: temperature as f32,
                    top_k: top_k as usize,
                    top_p: top_p as f32,
                    min_p: min_p as f32,
                    repeat_penalty: repeat_penalty as f32,
                    seed,
                    ..SamplerConfig::default()
                },
                max_tokens,
                stop,
                ignore_eog: self.ignore_eos.unwrap_or(false),
                ..GenerateOptions::default()
            },
            stream,
            include_usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrong_types_name_their_field_and_ranges_are_checked() {
        let e = parse::<Sampling>(br#"{"messages": [], "temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e =
            parse::<ChatRequest>(br#"{"messages": [{"role": "user", "content": 5}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        assert!(parse::<ChatRequest>(b"{")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(parse::<ChatRequest>(b"\xff\xfe")
            .unwrap_err()
            .message
            .contains("UTF-8"));
        let ok: Sampling =
            parse(br#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}"#)
                .unwrap();
        let checked = ok.check(10, 100).unwrap();
        assert_eq!(checked.options.max_tokens, 4);
        let too_long = ok.check(98, 100).unwrap_err();
        assert!(too_long.message.contains("98") && too_long.message.contains("100"));
        assert!(ok.check(101, 100).unwrap_err().message.contains("101"));
        let unknown: ChatRequest =
            parse(br#"{"messages": [{"role": "robot", "content": "x"}]}"#).unwrap();
        assert_eq!(
            unknown.messages().unwrap_err().param.as_deref(),
            Some("messages[0].role")
        );
        let cold: Sampling = parse(br#"{"messages": [], "temperature": -1}"#).unwrap();
        assert_eq!(
            cold.check(1, 10).unwrap_err().param.as_deref(),
            Some("temperature")
        );
    }

    proptest! {
        /// Whatever bytes arrive, parsing and checking answer Ok or a 400; they never panic.
        #[test]
        fn any_body_parses_or_is_a_400(body in prop::collection::vec(any::<u8>(), 0..256),
                                       json in "\\{(\"(messages|prompt|max_tokens|temperature|stop|n|top_k|logprobs)\": ?(\\[\\]|-?[0-9]{1,20}|\"[a-z]{0,4}\"|null|\\{\\}|\\[\\{\"role\": ?\"(user|x)\", ?\"content\": ?(\"a\"|1|null)\\}\\]),? ?){0,5}\\}") {
            for bytes in [body.as_slice(), json.as_bytes()] {
                match parse::<ChatRequest>(bytes) {
                    Ok(r) => {
                        let _ = r.messages();
                        let _ = r.logprobs();
                    }
                    Err(e) => prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST),
                }
                if let Ok(r) = parse::<CompletionRequest>(bytes) {
                    let _ = r.prompt();
                    let _ = r.logprobs();
                }
                match parse::<Sampling>(bytes) {
                    Ok(s) => {
                        if let Err(e) = s.check(5, 64) {
                            prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
                        }
                    }
                    Err(e) => prop_assert!(e.param.is_some() || !e.message.is_empty()),
                }
            }
        }
    }
}
