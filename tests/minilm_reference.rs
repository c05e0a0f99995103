//! all-MiniLM-L6-v2 against sentence-transformers (PyTorch): token ids, truncation and
//! embeddings on the sentences in `tests/fixtures/minilm_reference.json`.

mod common;

use common::{cosine, encoder, f32s, fixture, u32s};

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = fixture("minilm_reference.json");
    let encoder = encoder();
    assert_eq!(
        encoder.max_length(),
        reference["max_seq_length"].as_u64().unwrap() as usize
    );

    let items = reference["items"].as_array().unwrap();
    assert!(items.len() >= 20);
    for item in items {
        let text = item["text"].as_str().unwrap();
        let embedding = pollster::block_on(encoder.embed(&[text]))
            .unwrap()
            .remove(0);

        assert_eq!(
            embedding.token_ids,
            u32s(&item["token_ids"]),
            "token ids of {text:?}"
        );
        assert_eq!(
            embedding.truncated,
            item["truncated"].as_bool().unwrap(),
            "truncation of {text:?}"
        );
        assert_eq!(
            embedding.tokens_untruncated,
            item["token_count_untruncated"].as_u64().unwrap() as usize
        );
        let similarity = cosine(&embedding.vector, &f32s(&item["embedding"]));
        assert!(similarity >= 0.9999, "cosine {similarity} for {text:?}");
    }
}

#[test]
fn long_text_truncated_at_256_and_reported() {
    let reference = fixture("minilm_reference.json");
    let long = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["truncated"].as_bool().unwrap())
        .unwrap();
    let text = long["text"].as_str().unwrap();
    let embedding = pollster::block_on(encoder().embed(&[text]))
        .unwrap()
        .remove(0);
    assert!(embedding.truncated);
    assert_eq!(embedding.token_ids.len(), 256);
    assert_eq!(
        *embedding.token_ids.last().unwrap(),
        102,
        "truncated text still ends in [SEP]"
    );
    assert!(embedding.tokens_untruncated > 256);
}

#[test]
fn max_length_512_keeps_long_text() {
    let reference = fixture("minilm_reference.json");
    let long = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["truncated"].as_bool().unwrap())
        .unwrap();
    let text = long["text"].as_str().unwrap();
    let mut encoder = encoder();
    encoder.set_max_length(512).unwrap();
    let embedding = pollster::block_on(encoder.embed(&[text]))
        .unwrap()
        .remove(0);
    assert!(!embedding.truncated);
    assert_eq!(embedding.token_ids.len(), embedding.tokens_untruncated);
}

#[test]
fn max_length_above_positions_rejected() {
    let mut encoder = encoder();
    let message = encoder.set_max_length(513).unwrap_err().to_string();
    assert!(message.contains("513"), "{message}");
    assert!(message.contains("512"), "{message}");
}

#[test]
fn batch_matches_single_with_padding_masked() {
    let reference = fixture("minilm_reference.json");
    let texts: Vec<&str> = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["text"].as_str().unwrap())
        .collect();
    let encoder = encoder();
    let batch = pollster::block_on(encoder.embed(&texts)).unwrap();
    for (text, batched) in texts.iter().zip(&batch) {
        let single = pollster::block_on(encoder.embed(&[text]))
            .unwrap()
            .remove(0);
        let similarity = cosine(&batched.vector, &single.vector);
        assert!(
            similarity >= 0.99999,
            "batched cosine {similarity} for {text:?}"
        );
    }
}

#[test]
fn empty_text_rejected() {
    let encoder = encoder();
    for text in ["", "   \n\t"] {
        let message = pollster::block_on(encoder.embed(&[text]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("empty input text"), "{message}");
    }
}
