//! What a run leaves for people: its loss chart (`loss.svg`) and its model card (`README.md`).

use std::path::Path;

use anyhow::{Context, Result};

use super::{HistoryPoint, TrainConfig, TrainState};
use crate::chart::{Curve, TrainingPoint, training_curves};
use crate::fsutil::write_atomic;

/// The training curve, drawn into the output directory at every checkpoint.
pub const LOSS_CHART: &str = "loss.svg";

/// Draws the training curve of `history` (train loss and the validation ELBO perplexity bound
/// against tokens seen) into `out`/loss.svg.
pub fn write_loss_chart(out: &Path, history: &[HistoryPoint]) -> Result<()> {
    let name = out
        .file_name()
        .map_or("this run".into(), |n| n.to_string_lossy().into_owned());
    let path = out.join(LOSS_CHART);
    write_atomic(&path, training_curves(&[curve(name, history)])?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A run's history as a chart's curve.
pub fn curve(name: String, history: &[HistoryPoint]) -> Curve {
    Curve {
        name,
        points: history
            .iter()
            .map(|p| TrainingPoint {
                tokens_seen: p.tokens_seen as f64,
                train_loss: p.train_loss,
                val_ppl_bound: p.val_ppl_bound,
            })
            .collect(),
    }
}

/// The model card: data, configuration, tokens seen, wall time and the loss curve (a chart,
/// loss.svg, and a table).
pub fn model_card(config: &TrainConfig, st: &TrainState, corpus_tokens: usize) -> String {
    let (m, o, d) = (&config.model, &config.optim, &config.data);
    let mut card = format!(
        "# Model card\n\nA Latent Thought Model trained by `ltm train` (dual-rate: {fast} fast-learning steps per batch, \
         then one AdamW step on the decoder).\n\n\
         - **Architecture**: dim {dim}, {layers} layers, {heads} heads ({kv} key/value heads), SwiGLU width {ffn}, \
         {z} thought vectors ({zl} per layer), context {ctx}, window {win}, vocabulary {vocab}.\n\
         - **Data**: {problems} synthetic GSM8K-style word problems (`ltm data arith`, training templates, seed {seed}), \
         {corpus} tokens; validation on {val} problems of another seed.\n\
         - **Training**: {iters} iterations of {batch}×{seq} tokens, {seen} tokens seen, {wall}, lr {lr:e} → {min_lr:e}, \
         fast lr {flr0} → {flr1}.\n\n## Loss curve\n\n![training curve]({chart})\n\n| iteration | tokens seen | train loss | validation ELBO perplexity bound | minutes |\n| --- | --- | --- | --- | --- |\n",
        fast = o.fast_steps_label(),
        dim = m.dim,
        layers = m.n_layers,
        heads = m.n_heads,
        kv = m.n_kv_heads(),
        ffn = m.ffn_dim(),
        z = m.max_z_len,
        zl = m.z_per_layer(),
        ctx = m.max_seq_len,
        win = m.window_size,
        vocab = m.vocab_size,
        problems = d.train_problems,
        seed = d.seed,
        corpus = corpus_tokens,
        val = d.val_problems,
        iters = st.iter,
        batch = o.batch_size,
        seq = o.seq_len,
        seen = st.tokens_seen,
        wall = humantime(st.elapsed_s),
        lr = o.learning_rate,
        min_lr = o.min_lr,
        flr0 = o.initial_fast_lr,
        flr1 = o.final_fast_lr,
        chart = LOSS_CHART,
    );
    for p in &st.history {
        card.push_str(&format!(
            "| {} | {} | {:.3} | {:.1} | {:.1} |\n",
            p.iter,
            p.tokens_seen,
            p.train_loss,
            p.val_ppl_bound,
            p.elapsed_s / 60.0
        ));
    }
    card
}

pub fn humantime(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(iter: usize, train_loss: f64, val_ppl_bound: f64) -> HistoryPoint {
        HistoryPoint {
            iter,
            tokens_seen: iter * 4096,
            train_loss,
            val_ppl_bound,
            elapsed_s: iter as f64,
        }
    }

    #[test]
    fn the_loss_chart_is_written_and_the_card_links_it() {
        let dir = tempfile::tempdir().unwrap();
        write_loss_chart(dir.path(), &[]).unwrap();
        let empty = std::fs::read_to_string(dir.path().join(LOSS_CHART)).unwrap();
        assert!(
            empty.contains("<svg") && empty.contains("no data"),
            "{empty}"
        );
        let history = vec![
            point(100, 4.0, 60.0),
            point(200, 3.0, 25.0),
            point(300, 2.5, f64::INFINITY),
        ];
        write_loss_chart(dir.path(), &history).unwrap();
        let svg = std::fs::read_to_string(dir.path().join(LOSS_CHART)).unwrap();
        for text in [
            "<svg",
            "Training loss",
            "Validation ELBO perplexity bound",
            "tokens seen",
            "1 point left out",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }

        let config = TrainConfig::read(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny.toml"),
        )
        .unwrap();
        let state = TrainState {
            iter: 300,
            tokens_seen: 300 * 4096,
            elapsed_s: 300.0,
            history,
        };
        let card = model_card(&config, &state, 1000);
        assert!(card.contains("![training curve](loss.svg)"), "{card}");
        assert!(card.contains("| 200 | 819200 | 3.000 | 25.0 |"), "{card}");
    }
}
