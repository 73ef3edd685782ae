//! A byte-level BPE tokenizer trained on our own text: digits always split one by one (so
//! numbers are spelled digit by digit, as arithmetic needs), two special tokens.

use anyhow::{Result, anyhow};
use rayon::prelude::*;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerBuilder, TokenizerImpl,
};

use crate::tasks::{BOS, EOS};

/// Trains a byte-level BPE of (at most) `vocab_size` tokens on `texts`.
/// Ids 0 and 1 are `<|beginoftext|>` and `<|endoftext|>`.
pub fn train_bpe(texts: &[String], vocab_size: usize) -> Result<Tokenizer> {
    let specials = [BOS, EOS].map(|t| AddedToken::from(t, true));
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.to_vec())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]);
    let mut tokenizer: TokenizerImpl<
        BPE,
        NormalizerWrapper,
        Sequence,
        PostProcessorWrapper,
        ByteLevelDecoder,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(pre))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevelDecoder::default()))
        .build()
        .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| anyhow!("tokenizer training failed: {e}"))?;
    tokenizer
        .add_special_tokens(specials.clone())
        .map_err(|e| anyhow!("cannot add special tokens: {e}"))?;
    // Back to the untyped tokenizer the rest of the app loads from tokenizer.json.
    let json = tokenizer
        .to_string(false)
        .map_err(|e| anyhow!("cannot serialise the tokenizer: {e}"))?;
    let tokenizer: Tokenizer = json
        .parse()
        .map_err(|e| anyhow!("cannot reload the tokenizer: {e}"))?;
    Ok(tokenizer)
}

/// Token ids of `text`, special tokens recognised.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    encode_in_pieces(tokenizer, text, 1 << 16)
}

/// Encodes `text` a piece of about `piece_len` bytes at a time, each cut just before a
/// `<|beginoftext|>` (where the tokenizer splits anyway, so the ids are the same): an encoding
/// keeps a string and offsets for every token, which for a whole training corpus is gigabytes.
/// The pieces are encoded in parallel, a few at a time per thread.
fn encode_in_pieces(tokenizer: &Tokenizer, text: &str, piece_len: usize) -> Result<Vec<u32>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .match_indices(BOS)
            .map(|(at, _)| at)
            .find(|&at| at >= piece_len)
            .unwrap_or(rest.len());
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    let mut ids = Vec::new();
    for batch in pieces.chunks(4 * rayon::current_num_threads()) {
        let encoded: Vec<Vec<u32>> = batch
            .par_iter()
            .map(|piece| {
                tokenizer
                    .encode(*piece, false)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| anyhow!("cannot tokenize: {e}"))
            })
            .collect::<Result<_>>()?;
        ids.extend(encoded.into_iter().flatten());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_split_and_text_round_trips() {
        let texts: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "{BOS}Question: Tom has {i} apples and buys {} more.\n",
                    i * 7
                )
            })
            .collect();
        let tok = train_bpe(&texts, 300).unwrap();
        assert_eq!(tok.token_to_id(BOS), Some(0));
        assert_eq!(tok.token_to_id(EOS), Some(1));
        let text = format!("{BOS}Question: Tom has 1234 apples.");
        let ids = encode(&tok, &text).unwrap();
        assert_eq!(ids[0], 0);
        let pieces: Vec<String> = ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
        for d in ["1", "2", "3", "4"] {
            assert!(
                pieces.contains(&d.to_string()),
                "digit {d} is its own token in {pieces:?}"
            );
        }
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // A text encoded in pieces cut before BOS gets the ids of the whole.
        let corpus = texts.concat();
        let whole = tok
            .encode(corpus.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(encode_in_pieces(&tok, &corpus, 100).unwrap(), whole);
    }
}
