//! The async twin of [`CheckpointStore`], for stores whose calls are network requests.

use std::sync::Arc;

use crate::checkpoint::error::StoreError;
use crate::checkpoint::fs::FsStore;
use crate::checkpoint::model::{Checkpoint, CheckpointId};
use crate::checkpoint::store::{CheckpointInfo, CheckpointStore, LatestValid};

/// A place that keeps checkpoints, with async calls: the same contract as
/// [`CheckpointStore`], method for method (same ids, same order, same errors), for callers on
/// an async runtime. Feature `s3`.
///
/// [`ObjectStoreCheckpoints`](crate::ObjectStoreCheckpoints) implements it natively;
/// [`FsStore`] runs its blocking calls on tokio's blocking pool (`spawn_blocking`), so the
/// futures of both must be polled inside a tokio runtime. [`Store`](crate::Store) implements it
/// for whichever store a URL names, so a caller treats all of them alike. The trait is
/// object-safe (an `Arc<dyn AsyncCheckpointStore>` works).
///
/// # Example
///
/// ```
/// use amber_snapshot::{AsyncCheckpointStore, CheckpointId, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("checkpoints");
/// // A path or file:// URL opens an FsStore; s3://bucket/prefix an object store.
/// let store = Store::from_url(dir.to_str().unwrap())?;
/// assert_eq!(AsyncCheckpointStore::ids(&store).await?, []);
/// assert_eq!(AsyncCheckpointStore::next_id(&store).await?, CheckpointId(1));
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait AsyncCheckpointStore: Send + Sync {
    /// Stores a checkpoint under its manifest's id, atomically; see
    /// [`CheckpointStore::save`].
    async fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError>;

    /// The ids of the stored checkpoints, oldest first; see [`CheckpointStore::ids`].
    async fn ids(&self) -> Result<Vec<CheckpointId>, StoreError>;

    /// What each stored checkpoint holds, from the manifests only; see
    /// [`CheckpointStore::list`].
    async fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError>;

    /// Reads and checks checkpoint `id`; see [`CheckpointStore::load`].
    async fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError>;

    /// Removes checkpoint `id`; see [`CheckpointStore::remove`].
    async fn remove(&self, id: CheckpointId) -> Result<(), StoreError>;

    /// The newest checkpoint, or `None` if the store is empty; an error naming the newest if
    /// it does not load. See [`CheckpointStore::latest`].
    async fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.ids().await?.last() {
            Some(&id) => self.load(id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The newest checkpoint that loads, with the errors of the newer ones that did not; see
    /// [`CheckpointStore::latest_valid`].
    async fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        let mut skipped = Vec::new();
        for id in self.ids().await?.into_iter().rev() {
            match self.load(id).await {
                Ok(checkpoint) => return Ok(LatestValid { checkpoint: Some(checkpoint), skipped }),
                Err(err) => skipped.push(err),
            }
        }
        Ok(LatestValid { checkpoint: None, skipped })
    }

    /// The id after the highest stored one; 1 in an empty store. See
    /// [`CheckpointStore::next_id`].
    async fn next_id(&self) -> Result<CheckpointId, StoreError> {
        Ok(self.ids().await?.last().map_or(CheckpointId(1), |id| id.next()))
    }
}

/// Runs a blocking call of `store` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    store: &FsStore,
    call: impl FnOnce(&FsStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(result) => result,
        // The call panicked: carry the panic on in the caller, as a blocking call would.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// The filesystem store's calls, each run on tokio's blocking pool (a save encodes on the
/// calling task and writes on the pool).
#[async_trait::async_trait]
impl AsyncCheckpointStore for FsStore {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        let encoded = self.encode_for_save(checkpoint)?;
        blocking(self, move |store| store.write_encoded(encoded)).await
    }

    async fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        blocking(self, CheckpointStore::ids).await
    }

    async fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        blocking(self, CheckpointStore::list).await
    }

    async fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        blocking(self, move |store| CheckpointStore::load(store, id)).await
    }

    async fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        blocking(self, move |store| CheckpointStore::remove(store, id)).await
    }

    async fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        blocking(self, CheckpointStore::latest).await
    }

    async fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        blocking(self, CheckpointStore::latest_valid).await
    }
}

#[async_trait::async_trait]
impl<S: AsyncCheckpointStore + ?Sized> AsyncCheckpointStore for Arc<S> {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        (**self).save(checkpoint).await
    }

    async fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        (**self).ids().await
    }

    async fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        (**self).list().await
    }

    async fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        (**self).load(id).await
    }

    async fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        (**self).remove(id).await
    }

    async fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        (**self).latest().await
    }

    async fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        (**self).latest_valid().await
    }

    async fn next_id(&self) -> Result<CheckpointId, StoreError> {
        (**self).next_id().await
    }
}
