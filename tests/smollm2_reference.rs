//! SmolLM2-135M-Instruct (Q4_1 GGUF) against llama.cpp (llama-cpp-python) on the same
//! file: tokenizer ids, chat template, teacher-forced top-1 tokens and greedy output.

mod common;

use common::{fixture, llm, u32s};
use seedling::models::llama::GenerateOptions;
use seedling::models::sampling::{argmax, Sampling};

#[test]
fn tokenizer_matches_llama_cpp() {
    let reference = fixture("smollm2_reference.json");
    let llm = llm();
    let items = reference["tokenize"]["items"].as_array().unwrap();
    assert!(items.len() >= 20);
    for item in items {
        let text = item["text"].as_str().unwrap();
        let ids = llm.tokenizer().encode_text(text).unwrap();
        assert_eq!(ids, u32s(&item["token_ids"]), "token ids of {text:?}");
    }
}

#[test]
fn control_tokens_parsed_only_in_prompts() {
    let reference = fixture("smollm2_reference.json");
    let special = &reference["tokenize"]["special_tokens"];
    let text = special["text"].as_str().unwrap();
    let llm = llm();
    assert_eq!(
        llm.tokenizer().encode_prompt(text).unwrap(),
        u32s(&special["token_ids_special_true"])
    );
    assert_eq!(
        llm.tokenizer().encode_text(text).unwrap(),
        u32s(&special["token_ids_special_false"])
    );
}

#[test]
fn chat_template_matches_llama_cpp() {
    let reference = fixture("smollm2_reference.json");
    let llm = llm();
    for case in reference["greedy"].as_array().unwrap() {
        let user = case["messages"][0]["content"].as_str().unwrap();
        let prompt = llm.chat_prompt(None, user).unwrap();
        assert_eq!(prompt, case["prompt_text"].as_str().unwrap());
        assert_eq!(
            llm.tokenizer().encode_prompt(&prompt).unwrap(),
            u32s(&case["prompt_ids"])
        );
    }
}

/// The largest top-1 margin (in logits) at which llama.cpp disagrees with itself when
/// only its batch size or attention kernel changes, as measured by the fixture script.
/// Positions closer than this are near-ties that any float reordering can flip.
fn noise_margin(reference: &serde_json::Value) -> f64 {
    reference["self_agreement"]
        .as_array()
        .expect("fixture has self_agreement")
        .iter()
        .map(|variant| variant["largest_flipped_margin"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

#[test]
fn teacher_forced_top1_agrees_with_llama_cpp() {
    let reference = fixture("smollm2_reference.json");
    let noise = noise_margin(&reference);
    let llm = llm();
    let vocab = llm.config().vocab_size;
    let (mut agree, mut total, mut decisive_agree, mut decisive_total) = (0, 0, 0, 0);
    let cases = reference["teacher_forced"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let ids = u32s(&case["token_ids"]);
        assert_eq!(ids.len(), 64);
        let mut cache = llm.new_cache();
        let logits = pollster::block_on(llm.forward(&ids, &mut cache, true)).unwrap();
        let expected = u32s(&case["top1"]);
        for (position, row) in logits.chunks_exact(vocab).enumerate() {
            let same = argmax(row) as u32 == expected[position];
            total += 1;
            agree += same as usize;
            if case["top1_margin"][position].as_f64().unwrap() > noise {
                decisive_total += 1;
                decisive_agree += same as usize;
            }
        }
    }
    // NOTE: over all 320 positions llama.cpp agrees with itself at only 95-97% (see
    // self_agreement in the fixture). The 98% bar therefore applies to the positions
    // where its own top-1 is stable, and the overall figure goes in the message.
    let decisive = decisive_agree as f64 / decisive_total as f64;
    assert!(
        decisive_total >= 200,
        "only {decisive_total} positions above the noise margin {noise}"
    );
    assert!(
        decisive >= 0.98,
        "top-1 agreement {decisive:.4} on {decisive_total} positions with margin > {noise:.3}; overall {agree} of {total}"
    );
}

#[test]
fn greedy_first_16_tokens_identical() {
    let reference = fixture("smollm2_reference.json");
    let noise = noise_margin(&reference);
    let llm = llm();
    let options = GenerateOptions {
        max_new_tokens: 16,
        sampling: Sampling::Greedy,
        stop_at_eos: false,
    };
    let mut identical = 0;
    for case in reference["greedy"].as_array().unwrap() {
        let prompt_ids = u32s(&case["prompt_ids"]);
        let generation = pollster::block_on(llm.generate(&prompt_ids, &options, |_| {})).unwrap();
        let expected = u32s(&case["generated_ids"]);
        // Tokens must match up to the first near-tie in llama.cpp's own choice; after a
        // near-tie both continuations are valid greedy outputs of the same weights.
        let near_tie = (0..16)
            .find(|&step| case["top1_margin"][step].as_f64().unwrap() <= noise)
            .unwrap_or(16);
        assert_eq!(
            generation.token_ids[..near_tie],
            expected[..near_tie],
            "prompt {:?} (near-tie at step {near_tie})",
            case["messages"][0]["content"]
        );
        identical += (generation.token_ids == expected) as usize;
    }
    assert!(
        identical >= 3,
        "only {identical} of 5 prompts gave all 16 tokens identical"
    );
}

#[test]
fn kv_cache_matches_full_prefill() {
    let llm = llm();
    let ids = llm
        .tokenizer()
        .encode_text("The quick brown fox jumps over the lazy dog because it wants to.")
        .unwrap();
    let mut cache = llm.new_cache();
    let full = pollster::block_on(llm.forward(&ids, &mut cache, false)).unwrap();
    let mut cache = llm.new_cache();
    let mut stepped = Vec::new();
    for id in &ids {
        stepped = pollster::block_on(llm.forward(&[*id], &mut cache, false)).unwrap();
    }
    assert_eq!(cache.len(), ids.len());
    let max_difference = full
        .iter()
        .zip(&stepped)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_difference < 1e-3,
        "max logit difference {max_difference}"
    );
}

#[test]
fn seeded_sampling_reproducible() {
    let llm = llm();
    let prompt = llm
        .chat_prompt(None, "Write one sentence about trees.")
        .unwrap();
    let ids = llm.tokenizer().encode_prompt(&prompt).unwrap();
    let run = |seed| {
        let options = GenerateOptions {
            max_new_tokens: 12,
            sampling: Sampling::Random {
                temperature: 0.9,
                top_p: 0.95,
                seed,
            },
            stop_at_eos: false,
        };
        pollster::block_on(llm.generate(&ids, &options, |_| {}))
            .unwrap()
            .token_ids
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn stops_at_end_of_turn() {
    let llm = llm();
    let prompt = llm.chat_prompt(None, "Say OK.").unwrap();
    let ids = llm.tokenizer().encode_prompt(&prompt).unwrap();
    let options = GenerateOptions {
        max_new_tokens: 64,
        sampling: Sampling::Greedy,
        stop_at_eos: true,
    };
    let generation = pollster::block_on(llm.generate(&ids, &options, |_| {})).unwrap();
    let stop = &llm.tokenizer().special.stop;
    assert!(generation.token_ids.iter().all(|id| !stop.contains(id)));
}
