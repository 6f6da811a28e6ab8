//! A conversation's history as JSON, for `/save` and `/load`:
//! `{"format": "sluice-conversation", "version": 1, "messages": [{"role", "content"}, ...]}`.

use super::Conversation;
use crate::backend::Backend;
use crate::chat::ChatMessage;
use serde::{Deserialize, Serialize};

const FORMAT: &str = "sluice-conversation";
const VERSION: u32 = 1;

/// Why a conversation file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConversationFileError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error(
        "not a sluice conversation (expected an object with \"format\": \"{FORMAT}\" and \
         \"messages\"): {0}"
    )]
    Foreign(String),
    #[error(
        "conversation file version {0} is not supported (this sluice reads version {VERSION})"
    )]
    Version(u32),
    #[error("message {index}: {problem}")]
    Message { index: usize, problem: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMessage {
    role: String,
    content: String,
}

#[derive(Serialize, Deserialize)]
struct ConversationFile {
    format: String,
    version: u32,
    messages: Vec<FileMessage>,
}

impl<B: Backend> Conversation<B> {
    /// The history as JSON text.
    pub fn to_json(&self) -> String {
        let file = ConversationFile {
            format: FORMAT.into(),
            version: VERSION,
            messages: self
                .messages
                .iter()
                .map(|m| FileMessage {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect(),
        };
        // Strings and integers only: serializing cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }
}

/// Reads a history written by [`Conversation::to_json`], checking what a template relies on:
/// known roles, a system message only first.
pub fn parse_messages(json: &str) -> Result<Vec<ChatMessage>, ConversationFileError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ConversationFileError::Json(e.to_string()))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(ConversationFileError::Foreign(
            "no \"format\": \"sluice-conversation\"".into(),
        ));
    }
    let file: ConversationFile =
        serde_json::from_value(value).map_err(|e| ConversationFileError::Foreign(e.to_string()))?;
    if file.version != VERSION {
        return Err(ConversationFileError::Version(file.version));
    }
    file.messages
        .into_iter()
        .enumerate()
        .map(|(index, m)| {
            let problem = match m.role.as_str() {
                "system" if index > 0 => Some("a system message may only come first".to_string()),
                "system" | "user" | "assistant" => None,
                other => Some(format!(
                    "unknown role '{other}' (expected system, user or assistant)"
                )),
            };
            match problem {
                Some(problem) => Err(ConversationFileError::Message { index, problem }),
                None => Ok(ChatMessage::new(m.role, m.content)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_foreign_and_odd_files_are_refused_with_reasons() {
        let err = |s: &str| parse_messages(s).unwrap_err().to_string();
        assert!(err("{").starts_with("not valid JSON"), "{}", err("{"));
        assert!(err(r#"[{"role":"user","content":"hi"}]"#).contains("not a sluice conversation"));
        assert!(err(r#"{"format":"sluice-conversation","version":1}"#).contains("messages"));
        assert!(
            err(r#"{"format":"sluice-conversation","version":9,"messages":[]}"#)
                .contains("version 9")
        );
        let bad_role = r#"{"format":"sluice-conversation","version":1,
            "messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#;
        assert!(err(bad_role).contains("message 1: unknown role 'tool'"));
        let late_system = r#"{"format":"sluice-conversation","version":1,
            "messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]}"#;
        assert!(err(late_system).contains("only come first"));
        let ok = r#"{"format":"sluice-conversation","version":1,
            "messages":[{"role":"system","content":"s"},{"role":"user","content":"a"}]}"#;
        assert_eq!(
            parse_messages(ok).unwrap(),
            [ChatMessage::system("s"), ChatMessage::user("a")]
        );
    }
}
