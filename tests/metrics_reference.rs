//! BLEU and ROUGE-L against sacrebleu and rouge-score on the cases in
//! `tests/fixtures/metrics_reference.json` (made by `scripts/fixtures/make_metrics_fixture.py`).

mod common;

use common::fixture;
use seedling::tasks::metrics::{bleu, rouge};

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let reference = fixture("metrics_reference.json");
    let items = reference["items"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> = items
        .iter()
        .map(|item| {
            (
                item["prediction"].as_str().unwrap(),
                item["reference"].as_str().unwrap(),
            )
        })
        .collect();
    let ours = bleu::corpus_bleu(pairs);
    let expected = reference["corpus_bleu"].as_f64().unwrap();
    assert!(
        (ours - expected).abs() < 1e-9,
        "corpus BLEU {ours} vs sacrebleu {expected}"
    );
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let reference = fixture("metrics_reference.json");
    for item in reference["items"].as_array().unwrap() {
        let prediction = item["prediction"].as_str().unwrap();
        let ours = bleu::sentence_bleu(prediction, item["reference"].as_str().unwrap());
        let expected = item["sentence_bleu"].as_f64().unwrap();
        assert!(
            (ours - expected).abs() < 1e-9,
            "sentence BLEU of {prediction:?}: {ours} vs sacrebleu {expected}"
        );
    }
}

#[test]
fn rouge_l_matches_rouge_score() {
    let reference = fixture("metrics_reference.json");
    for item in reference["items"].as_array().unwrap() {
        let prediction = item["prediction"].as_str().unwrap();
        let ours = rouge::rouge_l(item["reference"].as_str().unwrap(), prediction);
        let expected = &item["rouge_l"];
        assert!(
            (ours.precision - expected["precision"].as_f64().unwrap()).abs() < 1e-12,
            "precision of {prediction:?}"
        );
        assert!(
            (ours.recall - expected["recall"].as_f64().unwrap()).abs() < 1e-12,
            "recall of {prediction:?}"
        );
        assert!(
            (ours.fmeasure - expected["fmeasure"].as_f64().unwrap()).abs() < 1e-12,
            "F of {prediction:?}"
        );
    }
}
