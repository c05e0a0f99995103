//! `seedling finetune`: trains a task's linear head on the training split and records
//! its inputs, held-out score and training energy beside the weights.

use std::path::Path;

use crate::clock::{elapsed_ms, Instant};
use crate::data::{seeded_subset, uci_sentiment};
use crate::error::{Error, Result};
use crate::manifest::defaults;
use crate::models::head::{HeadRecord, LinearHead};
use crate::native::Defaults;
use crate::tasks::metrics::classification::{macro_f1, wilson};
use crate::tasks::sentiment;
use crate::train::{train_linear_head, TrainOptions};

/// Batch size for embedding the training and test sets.
const BATCH: usize = 32;

/// Threads kept busy since `cpu_before`: process CPU time over wall time.
fn busy_threads(wall_seconds: f64, cpu_before: f64) -> f64 {
    (crate::native::cpu_seconds() - cpu_before) / wall_seconds.max(1e-9)
}

/// Reads the three UCI files, verified, with their records.
pub fn uci_items(
    defaults: &Defaults,
) -> Result<(
    Vec<uci_sentiment::SentimentItem>,
    Vec<crate::report::FileRecord>,
)> {
    let mut items = Vec::new();
    let mut records = Vec::new();
    for (source, dest) in defaults::UCI_SOURCES {
        let (bytes, record) = defaults.data_file(dest)?;
        let text = String::from_utf8(bytes).map_err(|e| Error::InvalidData {
            file: dest.into(),
            line: 0,
            reason: e.to_string(),
        })?;
        items.extend(uci_sentiment::parse(dest, source, &text)?);
        records.push(record);
    }
    Ok((items, records))
}

/// Trains the sentiment head and writes `<out>/sentiment.safetensors` and `<out>/sentiment.json`.
pub fn finetune_sentiment(
    root: &Path,
    out: &Path,
    train_limit: Option<usize>,
    options: &TrainOptions,
    command: &str,
) -> Result<HeadRecord> {
    let started = Instant::now();
    let cpu_before = crate::native::cpu_seconds();
    let defaults = Defaults::open(root)?;
    let (encoder, encoder_files) = defaults.encoder()?;
    let (items, data) = uci_items(&defaults)?;
    let split = sentiment::split(&items);

    let mut train = split.train.clone();
    if let Some(limit) = train_limit {
        train = seeded_subset(train.len(), limit, sentiment::SPLIT_SEED)
            .into_iter()
            .map(|i| split.train[i])
            .collect();
    }
    tracing::info!(
        train = train.len(),
        test = split.test.len(),
        "fine-tuning the sentiment head"
    );

    let embed = |indices: &[usize]| -> Result<Vec<Vec<f32>>> {
        let mut features = Vec::with_capacity(indices.len());
        for chunk in indices.chunks(BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|&i| items[i].text.as_str()).collect();
            features.extend(
                pollster::block_on(encoder.embed(&texts))?
                    .into_iter()
                    .map(|e| e.vector),
            );
        }
        Ok(features)
    };
    let train_features = embed(&train)?;
    let train_labels: Vec<u8> = train.iter().map(|&i| items[i].label).collect();
    let (head, losses) = train_linear_head(&train_features, &train_labels, 2, options)?;
    let training_seconds = elapsed_ms(started) / 1000.0;

    let test_features = embed(&split.test)?;
    let truth: Vec<u8> = split.test.iter().map(|&i| items[i].label).collect();
    let mut predictions = Vec::with_capacity(truth.len());
    for feature in &test_features {
        predictions.push(crate::models::sampling::argmax(&head.probabilities(feature)?) as u8);
    }
    let correct = predictions
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p == t)
        .count();
    let accuracy = wilson(correct, truth.len());

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (profile, grid) = crate::eval::energy_context(None, &Default::default())?;
    let grid = grid.grid;
    let energy = crate::energy::estimate_device(
        &profile,
        &grid,
        training_seconds,
        1,
        busy_threads(training_seconds, cpu_before),
        threads,
    );

    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display(), e))?;
    let weights = head.to_safetensors()?;
    let weights_path = out.join("sentiment.safetensors");
    std::fs::write(&weights_path, &weights).map_err(|e| Error::io(weights_path.display(), e))?;

    let record = HeadRecord {
        task: "sentiment".into(),
        file: "sentiment.safetensors".into(),
        sha256: crate::integrity::sha256_hex(&weights),
        command: command.into(),
        encoder: encoder_files.into_iter().next().expect("encoder files"),
        data,
        split_seed: sentiment::SPLIT_SEED,
        test_fraction: sentiment::TEST_FRACTION,
        train_examples: train.len(),
        test_examples: truth.len(),
        epochs: options.epochs,
        learning_rate: options.learning_rate,
        weight_decay: options.weight_decay,
        final_loss: losses.last().copied().unwrap_or(f32::NAN),
        held_out_accuracy: accuracy.value,
        held_out_interval: (accuracy.low, accuracy.high),
        held_out_macro_f1: macro_f1(&predictions, &truth, 2),
        training_seconds,
        training_wh: energy.attributional_wh,
        training_profile: profile.id,
    };
    let record_path = out.join("sentiment.json");
    let json = serde_json::to_string_pretty(&record)?;
    std::fs::write(&record_path, json + "\n").map_err(|e| Error::io(record_path.display(), e))?;
    Ok(record)
}

/// Loads a head and checks its weights against the SHA-256 in its record.
pub fn load_head(folder: &Path, task: &str) -> Result<(LinearHead, HeadRecord)> {
    let record_path = folder.join(format!("{task}.json"));
    let text = std::fs::read_to_string(&record_path).map_err(|e| {
        Error::io(
            record_path.display(),
            std::io::Error::new(
                e.kind(),
                format!("{e}; train it with `seedling finetune --task {task}`"),
            ),
        )
    })?;
    let record: HeadRecord = serde_json::from_str(&text)?;
    let weights_path = folder.join(&record.file);
    let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(weights_path.display(), e))?;
    crate::integrity::verify_sha256(&weights_path.display().to_string(), &bytes, &record.sha256)?;
    Ok((LinearHead::load(&bytes, &record.file)?, record))
}
