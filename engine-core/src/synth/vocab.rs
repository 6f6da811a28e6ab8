//! A valid GPT-2-style byte-level BPE tokenizer section for synthesized models: special tokens, the
//! 256 byte tokens, then merges built breadth-first over a small alphabet so every merge's parts exist
//! before it and ranks are consistent.

use crate::gguf::{Array, Metadata, Value};
use crate::{Error, Result};

/// The specials every synthesized vocabulary starts with (ids 0, 1, 2).
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// Smallest vocabulary: the specials and the 256 byte tokens.
pub const MIN_VOCAB: u64 = SPECIAL_TOKENS.len() as u64 + 256;

/// A ChatML template, as instruction-tuned llama-family models use.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// GPT-2 maps every byte to a printable character so byte-level tokens are valid strings.
pub fn byte_to_char(b: u8) -> char {
    let printable =
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable {
        return char::from(b);
    }
    // The other 68 bytes take code points from 256 upwards, in byte order.
    let rank = (0..b)
        .filter(|&x| {
            !((b'!'..=b'~').contains(&x)
                || (0xA1..=0xAC).contains(&x)
                || (0xAE..=0xFF).contains(&x))
        })
        .count() as u32;
    char::from_u32(256 + rank).unwrap_or('?')
}

/// Adds `tokenizer.*` keys for a vocabulary of `vocab` tokens.
pub fn add_tokenizer(m: &mut Metadata, vocab: u64) -> Result<()> {
    if vocab < MIN_VOCAB {
        return Err(Error::Config(format!(
            "vocabulary of {vocab} is below the minimum of {MIN_VOCAB}"
        )));
    }
    let n = usize::try_from(vocab)
        .map_err(|_| Error::Config(format!("vocabulary of {vocab} is too large")))?;
    let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    tokens.extend((0..=255u8).map(|b| byte_to_char(b).to_string()));
    let mut merges = Vec::with_capacity(n - tokens.len());
    // Level k holds the tokens of k+1 alphabet characters; each extends a level k-1 token by one char.
    let alphabet: Vec<String> = std::iter::once('Ġ')
        .chain('a'..='z')
        .map(String::from)
        .collect();
    let mut level: Vec<String> = alphabet.clone();
    'fill: loop {
        let mut next = Vec::with_capacity(level.len() * alphabet.len());
        for left in &level {
            for right in &alphabet {
                if tokens.len() == n {
                    break 'fill;
                }
                let token = format!("{left}{right}");
                merges.push(format!("{left} {right}"));
                tokens.push(token.clone());
                next.push(token);
            }
        }
        level = next;
    }
    let mut types = vec![1i32; n];
    types[..SPECIAL_TOKENS.len()].fill(3);
    m.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    m.set("tokenizer.ggml.pre", Value::String("default".into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m.set("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    m.set("tokenizer.ggml.bos_token_id", Value::U32(1));
    m.set("tokenizer.ggml.eos_token_id", Value::U32(2));
    m.set("tokenizer.ggml.padding_token_id", Value::U32(0));
    m.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
    m.set(
        "tokenizer.chat_template",
        Value::String(CHAT_TEMPLATE.into()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn byte_tokens_are_distinct_and_printable_bytes_map_to_themselves() {
        let chars: HashSet<char> = (0..=255u8).map(byte_to_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
    }

    #[test]
    fn vocabulary_is_unique_and_every_merge_joins_earlier_tokens() {
        let mut m = Metadata::new();
        add_tokenizer(&mut m, 1000).unwrap();
        let Some(Array::String(tokens)) = m.get_array("tokenizer.ggml.tokens").unwrap() else {
            panic!()
        };
        let Some(Array::String(merges)) = m.get_array("tokenizer.ggml.merges").unwrap() else {
            panic!()
        };
        assert_eq!(tokens.len(), 1000);
        assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), 1000);
        assert_eq!(merges.len(), 1000 - MIN_VOCAB as usize);
        let mut known: HashSet<&str> = tokens[..MIN_VOCAB as usize]
            .iter()
            .map(String::as_str)
            .collect();
        for (merge, token) in merges.iter().zip(&tokens[MIN_VOCAB as usize..]) {
            let (l, r) = merge.split_once(' ').unwrap();
            assert!(known.contains(l) && known.contains(r), "{merge}");
            assert_eq!(format!("{l}{r}"), *token);
            known.insert(token);
        }
        assert!(add_tokenizer(&mut m, MIN_VOCAB - 1).is_err());
    }
}
