//! Persistence of fitted models beside the index. Each fit is written to its own
//! directory `gen-<generation>` (a JSON file plus the embeddings and the text
//! model's term weights as raw little-endian f32), and the file `CURRENT` is switched to it with an atomic
//! rename, so a crash mid-save leaves the previous model in place. Older
//! directories are removed after the switch.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use klynge_models::model::FittedModel;
use ndarray::Array2;

pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn new(dir: PathBuf) -> ModelStore {
        ModelStore { dir }
    }

    pub fn save(&self, model: &FittedModel) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let name = format!("gen-{}", model.generation);
        let target = self.dir.join(&name);
        let staging = self.dir.join(format!(".staging-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let mut json = BufWriter::new(fs::File::create(staging.join("model.json"))?);
        serde_json::to_writer(&mut json, model)?;
        json.into_inner()?.sync_all()?;
        for (file, values) in [
            ("embeddings.f32", model.embeddings.as_slice().expect("embeddings are contiguous")),
            ("terms.f32", model.text.components()),
        ] {
            let mut raw = BufWriter::new(fs::File::create(staging.join(file))?);
            for value in values {
                raw.write_all(&value.to_le_bytes())?;
            }
            raw.into_inner()?.sync_all()?;
        }
        let _ = fs::remove_dir_all(&target);
        fs::rename(&staging, &target)?;
        let pointer = self.dir.join(".CURRENT.tmp");
        fs::write(&pointer, &name)?;
        fs::File::open(&pointer)?.sync_all()?;
        fs::rename(&pointer, self.dir.join("CURRENT"))?;
        self.remove_all_but(&name);
        Ok(())
    }

    pub fn load(&self) -> anyhow::Result<Option<FittedModel>> {
        let Ok(name) = fs::read_to_string(self.dir.join("CURRENT")) else {
            return Ok(None);
        };
        let dir = self.dir.join(name.trim());
        let mut model: FittedModel = serde_json::from_reader(BufReader::new(fs::File::open(dir.join("model.json"))?))?;
        let embeddings = read_embeddings(&dir.join("embeddings.f32"), model.ids.len(), model.text.dim())?;
        let terms = read_f32(&dir.join("terms.f32"))?;
        model.text.set_components(terms)?;
        model.restore(embeddings);
        Ok(Some(model))
    }

    fn remove_all_but(&self, keep: &str) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("gen-") && name != keep {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn read_embeddings(path: &Path, rows: usize, dim: usize) -> anyhow::Result<Array2<f32>> {
    let values = read_f32(path)?;
    anyhow::ensure!(values.len() == rows * dim, "embeddings file has {} values, expected {}", values.len(), rows * dim);
    Ok(Array2::from_shape_vec((rows, dim), values)?)
}

fn read_f32(path: &Path) -> anyhow::Result<Vec<f32>> {
    let mut bytes = Vec::new();
    BufReader::new(fs::File::open(path)?).read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() % 4 == 0, "{} is not a whole number of f32 values", path.display());
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}
