//! Where checkpoints are kept: the store trait and what it reports.

use crate::Epoch;
use crate::checkpoint::error::StoreError;
use crate::checkpoint::model::{Checkpoint, CheckpointId};

/// A place that keeps checkpoints, ordered by [`CheckpointId`].
///
/// The calls are blocking: the async runtime makes them from a blocking thread (e.g. tokio's
/// `spawn_blocking`), never from an executor thread. The trait is object-safe, so a system holds
/// an `Arc<dyn CheckpointStore>`.
///
/// Two stores implement it: [`FsStore`](crate::FsStore), and with feature `s3`
/// `ObjectStoreCheckpoints` (S3 and S3-compatible object storage), whose native interface is
/// the async twin `AsyncCheckpointStore`; [`Store::from_url`](crate::Store::from_url) opens
/// either. The trait asks nothing an object store lacks: a checkpoint is one object that
/// appears whole (a completed multipart upload is atomic), [`ids`](Self::ids) is a listing of
/// keys under a prefix, [`list`](Self::list) needs only the start of each object (a ranged
/// GET; [`decode_manifest`](crate::decode_manifest) reports
/// [`Truncated`](crate::FormatError::Truncated) if the manifest is longer), and nothing relies
/// on renaming or appending. A backend's own errors go in [`StoreError::Backend`].
///
/// The caller picks each checkpoint's id (in [`Manifest::id`](crate::Manifest::id)), usually
/// [`next_id`](Self::next_id). A store is written by one system at a time.
pub trait CheckpointStore: Send + Sync {
    /// Stores a checkpoint under its manifest's id, atomically: afterwards it is stored whole,
    /// or, on error or crash, not at all, and the checkpoints stored before are untouched.
    ///
    /// Fails with [`StoreError::AlreadyExists`] if the id is taken and with
    /// [`StoreError::Unencodable`] if the checkpoint is inconsistent. A store with retention
    /// then removes the oldest checkpoints beyond its limit.
    fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError>;

    /// The ids of the stored checkpoints, oldest (lowest) first, without reading them.
    fn ids(&self) -> Result<Vec<CheckpointId>, StoreError>;

    /// What each stored checkpoint holds, oldest first, read from the manifests only (the rest
    /// of each checkpoint is not checked). Fails, naming the file, if a manifest is unreadable.
    fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError>;

    /// Reads and checks checkpoint `id`: [`StoreError::NotFound`] if there is none,
    /// [`StoreError::Format`] if it is torn or corrupt.
    fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError>;

    /// Removes checkpoint `id`: [`StoreError::NotFound`] if there is none.
    fn remove(&self, id: CheckpointId) -> Result<(), StoreError>;

    /// The newest checkpoint, or `None` if the store is empty.
    ///
    /// If the newest does not load (e.g. it is torn), this is an error naming it, not a silent
    /// fall back to an older one; [`latest_valid`](Self::latest_valid) falls back.
    fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.ids()?.last() {
            Some(&id) => self.load(id).map(Some),
            None => Ok(None),
        }
    }

    /// The newest checkpoint that loads, with the errors of the newer ones that did not.
    ///
    /// Fails only if the store cannot be listed.
    fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        let mut skipped = Vec::new();
        for id in self.ids()?.into_iter().rev() {
            match self.load(id) {
                Ok(checkpoint) => return Ok(LatestValid { checkpoint: Some(checkpoint), skipped }),
                Err(err) => skipped.push(err),
            }
        }
        Ok(LatestValid { checkpoint: None, skipped })
    }

    /// The id after the highest stored one (whether it loads or not); 1 in an empty store.
    fn next_id(&self) -> Result<CheckpointId, StoreError> {
        Ok(self.ids()?.last().map_or(CheckpointId(1), |id| id.next()))
    }
}

/// A stored checkpoint, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its id.
    pub id: CheckpointId,
    /// The snapshot epoch it records.
    pub epoch: Epoch,
    /// When the snapshot completed, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Where it is stored: a file path, or an object key.
    pub path_or_key: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The result of [`CheckpointStore::latest_valid`].
#[derive(Debug)]
pub struct LatestValid {
    /// The newest checkpoint that loads, or `None` if none does.
    pub checkpoint: Option<Checkpoint>,
    /// Why each newer checkpoint did not load, newest first.
    pub skipped: Vec<StoreError>,
}
