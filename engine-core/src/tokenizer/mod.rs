//! The tokenizer of a GGUF model, built from its `tokenizer.*` metadata and matching llama.cpp's
//! token ids: byte-level BPE (`gpt2`, with the pre-tokenizers in [`pretokenize`]) and SentencePiece
//! (`llama`), special tokens, add-BOS/EOS, and decoding that streams valid UTF-8.
//!
//! ## Design
//! Encoding is llama.cpp's `llama_vocab::tokenize`: special tokens are cut out of the input first
//! ([`special`]), then each remaining text fragment goes through the model's algorithm ([`bpe`] or
//! [`spm`]). Everything llama.cpp derives from the metadata at load time (default special ids, the
//! end-of-generation set, token attributes, the pre-tokenizer's flags) is derived once in
//! [`Tokenizer::from_metadata`]; encoding never allocates per token beyond its output.
//!
//! Decoding renders special tokens as their text (llama.cpp's `token_to_piece` with `special =
//! true`), so `decode(encode(s, _, true))` is `s`. [`Tokenizer::detokenize`] is llama.cpp's
//! `llama_detokenize` with its flags, clean-up passes included.

mod bpe;
mod decode;
pub mod pretokenize;
mod special;
mod spm;
mod unicode;
mod unicode_data;
mod vocab;

pub use decode::{Decoder, DetokenizeOptions};
pub use pretokenize::{PreTokenizerConfig, PreTokenizerKind};
pub use special::SpecialIds;

use crate::gguf::{GgufError, Metadata};
use decode::Pieces;
use special::{Fragment, SpecialMatcher};
use vocab::Vocab;

/// Everything that can go wrong building or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] GgufError),

    #[error("unsupported tokenizer model '{0}' (supported: gpt2, llama)")]
    UnsupportedModel(String),

    #[error("unsupported pre-tokenizer '{name}' (supported: {supported})")]
    UnsupportedPreTokenizer { name: String, supported: String },

    #[error("invalid tokenizer metadata: '{key}' {problem}")]
    InvalidVocab { key: String, problem: String },

    #[error("token id {id} is out of range (vocabulary of {vocab_size})")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("the vocabulary has no {0} token, but the model asks to add one")]
    MissingSpecial(&'static str),

    #[error("the vocabulary has no token for byte 0x{0:02X}")]
    NoByteToken(u8),
}

impl TokenizerError {
    fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::InvalidVocab {
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

impl From<TokenizerError> for crate::Error {
    fn from(e: TokenizerError) -> Self {
        match e {
            TokenizerError::Metadata(g) => crate::Error::Gguf(g),
            other => crate::Error::Config(other.to_string()),
        }
    }
}

/// The tokenization algorithm (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// `gpt2`: byte-level BPE.
    Bpe,
    /// `llama`: SentencePiece.
    Spm,
}

#[derive(Debug, Clone)]
enum Model {
    Bpe(Box<bpe::Bpe>),
    Spm,
}

/// A GGUF model's tokenizer. Cheap to share (`&Tokenizer` is all encoding and decoding need).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    model_type: ModelType,
    pre: Option<PreTokenizerConfig>,
    special: SpecialIds,
    matcher: SpecialMatcher,
    pieces: Pieces,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

impl Tokenizer {
    /// Builds the tokenizer described by `tokenizer.*` keys, with llama.cpp's defaults for what
    /// the metadata leaves out.
    pub fn from_metadata(m: &Metadata) -> Result<Self, TokenizerError> {
        let model_name = m
            .get_str("tokenizer.ggml.model")?
            .ok_or_else(|| TokenizerError::invalid("tokenizer.ggml.model", "is missing"))?;
        let model_type = match model_name {
            "gpt2" => ModelType::Bpe,
            "llama" => ModelType::Spm,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let mut vocab = Vocab::from_metadata(m)?;

        let (pre, defaults, mut add_bos, mut add_space_prefix, clean_spaces) = match model_type {
            ModelType::Bpe => {
                let pre = PreTokenizerConfig::from_name(m.get_str("tokenizer.ggml.pre")?)?;
                let defaults = SpecialIds {
                    bos: (!pre.no_bos).then_some(11),
                    eos: Some(11),
                    ..SpecialIds::default()
                };
                let (add_bos, clean) = (pre.add_bos, pre.clean_spaces);
                (Some(pre), defaults, add_bos, false, clean)
            }
            ModelType::Spm => {
                let defaults = SpecialIds {
                    bos: Some(1),
                    eos: Some(2),
                    unk: Some(0),
                    ..SpecialIds::default()
                };
                (None, defaults, true, true, false)
            }
        };
        if let Some(v) = m.get_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }
        let special = SpecialIds::resolve(m, &mut vocab, defaults)?;
        if let Some(v) = m.get_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        let add_eos = m.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);

        let model = match (model_type, &pre) {
            (ModelType::Bpe, Some(p)) => {
                Model::Bpe(Box::new(bpe::Bpe::new(m, &vocab, p.kind, p.ignore_merges)?))
            }
            _ => Model::Spm,
        };
        // llama.cpp lists the special tokens before its name-based attribute rules run, and applies
        // the rules to that list.
        let listed = SpecialMatcher::new(&vocab);
        special::apply_name_rules(m, &mut vocab, listed.ids())?;
        let matcher = SpecialMatcher::new(&vocab);
        let pieces = Pieces::new(&vocab, model_type);
        Ok(Self {
            vocab,
            model,
            model_type,
            pre,
            special,
            matcher,
            pieces,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
        })
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS where the vocabulary asks for them;
    /// `parse_special` turns the text of control tokens (`<|im_start|>`, `<bos>`...) into those
    /// tokens. User-defined tokens are matched either way, as in llama.cpp.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(
                self.special
                    .bos
                    .ok_or(TokenizerError::MissingSpecial("BOS"))?,
            );
        }
        let fragments = self.matcher.partition(&self.vocab, text, parse_special);
        match &self.model {
            Model::Bpe(bpe) => {
                for frag in fragments {
                    match frag {
                        Fragment::Text(r) => bpe.encode(&self.vocab, &text[r], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm => {
                // A space goes before the first fragment and before any fragment that follows a
                // special token.
                let mut prev_special = true;
                let mut buf = String::new();
                for frag in fragments {
                    match frag {
                        Fragment::Text(r) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('▁');
                            }
                            for c in text[r].chars() {
                                buf.push(if c == ' ' { '▁' } else { c });
                            }
                            spm::encode(&self.vocab, &buf, &mut out)?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(
                self.special
                    .eos
                    .ok_or(TokenizerError::MissingSpecial("EOS"))?,
            );
        }
        Ok(out)
    }

    /// The token's text as the vocabulary stores it (`Ġhello`, `▁hello`, `<0x0A>`, `<|im_end|>`).
    pub fn token_text(&self, id: u32) -> Result<&str, TokenizerError> {
        self.vocab.texts.get(id as usize).map(String::as_str).ok_or(
            TokenizerError::TokenOutOfRange {
                id,
                vocab_size: self.vocab.len(),
            },
        )
    }

    /// The id of an exact token text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn model_type(&self) -> ModelType {
        self.model_type
    }

    /// The pre-tokenizer settings (byte-level BPE only).
    pub fn pre_tokenizer(&self) -> Option<&PreTokenizerConfig> {
        self.pre.as_ref()
    }

    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }

    /// End of turn (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`...).
    pub fn eot(&self) -> Option<u32> {
        self.special.eot
    }

    /// All special ids and the end-of-generation set.
    pub fn special_ids(&self) -> &SpecialIds {
        &self.special
    }

    /// Whether `encode(_, add_special = true, _)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(_, add_special = true, _)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generation stops at `id`: EOS, EOT, EOM, and every token llama.cpp counts as end of
    /// generation (`<|im_end|>`, `<end_of_turn>`, `<|endoftext|>`, FIM pad/repo/sep...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.special.eog.contains(&id)
    }

    /// Whether `id` is a control token (rendered as text by [`Tokenizer::decode`], dropped by
    /// [`Tokenizer::detokenize`] without `unparse_special`).
    pub fn is_control(&self, id: u32) -> bool {
        (id as usize) < self.vocab.len() && self.vocab.has_attr(id, vocab::attr::CONTROL)
    }
}

#[cfg(test)]
mod tests;
