//! A store named by a URL: a directory, a `file://` URL or (feature `s3`) an `s3://` URL.

use std::path::PathBuf;

#[cfg(feature = "s3")]
use crate::checkpoint::async_store::AsyncCheckpointStore;
use crate::checkpoint::error::StoreError;
use crate::checkpoint::format::Compression;
use crate::checkpoint::fs::FsStore;
use crate::checkpoint::model::{Checkpoint, CheckpointId};
#[cfg(feature = "s3")]
use crate::checkpoint::object::ObjectStoreCheckpoints;
use crate::checkpoint::store::{CheckpointInfo, CheckpointStore, LatestValid};

/// A checkpoint store named by a URL ([`from_url`](Store::from_url)): the same calls whatever
/// the store, through [`CheckpointStore`] (blocking) and, with feature `s3`,
/// `AsyncCheckpointStore`.
///
/// # Example
///
/// ```
/// use amber_snapshot::{CheckpointStore, Store};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("checkpoints");
/// let url = format!("file://{}", dir.display());
/// let store = Store::from_url(&url)?.with_retention(5);
/// assert!(matches!(store, Store::Fs(_)));
/// assert_eq!(store.ids()?, []);
/// // With feature `s3`: Store::from_url("s3://bucket/checkpoints/bank")
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Store {
    /// A directory of the local filesystem.
    Fs(FsStore),
    /// A prefix in object storage. Feature `s3`.
    #[cfg(feature = "s3")]
    Object(ObjectStoreCheckpoints),
}

impl Store {
    /// Opens the store `url` names:
    ///
    /// - `s3://BUCKET/PREFIX` (feature `s3`): the checkpoints under `PREFIX` in an S3 bucket,
    ///   `ObjectStoreCheckpoints::from_s3_url`,
    ///   with the endpoint and credentials of the standard AWS environment variables
    ///   (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    ///   `AWS_ALLOW_HTTP`);
    /// - `file:///DIR` (percent-encoded, host empty or `localhost`) or a plain path `DIR`: an
    ///   [`FsStore`] in that directory, created if needed ([`FsStore::open`]).
    ///
    /// Fails with [`StoreError::Url`] for a malformed URL, another scheme, or `s3://` in a build
    /// without feature `s3`.
    pub fn from_url(url: &str) -> Result<Store, StoreError> {
        Store::open_url(url, FsStore::open)
    }

    /// Opens the store `url` names, as [`from_url`](Self::from_url) does, for reading: a
    /// directory must exist ([`FsStore::open_existing`]) and is never created.
    pub fn open_existing(url: &str) -> Result<Store, StoreError> {
        Store::open_url(url, FsStore::open_existing)
    }

    /// Whether `name` is a URL (`SCHEME://…`) rather than a path.
    pub fn is_url(name: &str) -> bool {
        name.split_once("://").is_some_and(|(scheme, _)| is_scheme(scheme))
    }

    fn open_url(
        url: &str,
        open_dir: impl FnOnce(PathBuf) -> Result<FsStore, StoreError>,
    ) -> Result<Store, StoreError> {
        let bad = |reason: &str| StoreError::Url { url: url.to_owned(), reason: reason.to_owned() };
        match url.split_once("://") {
            Some(("s3", _)) => Store::s3(url),
            Some(("file", rest)) => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(bad("a file URL names an absolute path: file:///DIR"));
                }
                let path = percent_encoding::percent_decode_str(path)
                    .decode_utf8()
                    .map_err(|_| bad("the path is not UTF-8 once percent-decoded"))?;
                Ok(Store::Fs(open_dir(PathBuf::from(path.as_ref()))?))
            }
            Some((scheme, _)) if is_scheme(scheme) => {
                Err(bad("unsupported scheme (use a path, file:///DIR or s3://BUCKET/PREFIX)"))
            }
            _ => Ok(Store::Fs(open_dir(PathBuf::from(url))?)),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str) -> Result<Store, StoreError> {
        ObjectStoreCheckpoints::from_s3_url(url).map(Store::Object)
    }

    #[cfg(not(feature = "s3"))]
    fn s3(url: &str) -> Result<Store, StoreError> {
        Err(StoreError::Url {
            url: url.to_owned(),
            reason: "s3:// URLs need amber-snapshot's cargo feature `s3`".to_owned(),
        })
    }

    /// Keeps only the `keep_last` newest checkpoints ([`FsStore::with_retention`]).
    #[must_use]
    pub fn with_retention(self, keep_last: usize) -> Store {
        match self {
            Store::Fs(store) => Store::Fs(store.with_retention(keep_last)),
            #[cfg(feature = "s3")]
            Store::Object(store) => Store::Object(store.with_retention(keep_last)),
        }
    }

    /// How checkpoint `id` is named: its file's path, or its object's URL.
    pub fn location_of(&self, id: CheckpointId) -> String {
        match self {
            Store::Fs(store) => store.path_of(id).display().to_string(),
            #[cfg(feature = "s3")]
            Store::Object(store) => store.location_of(id),
        }
    }

    /// The size in bytes of checkpoint `id` as stored ([`StoreError::NotFound`] if there is
    /// none), without reading it. Blocking.
    pub fn bytes_of(&self, id: CheckpointId) -> Result<u64, StoreError> {
        match self {
            Store::Fs(store) => {
                let path = store.path_of(id);
                match std::fs::metadata(&path) {
                    Ok(metadata) => Ok(metadata.len()),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        Err(StoreError::NotFound { id, location: path.display().to_string() })
                    }
                    Err(source) => Err(StoreError::Io { op: "read metadata of", path, source }),
                }
            }
            #[cfg(feature = "s3")]
            Store::Object(store) => store.bytes_of_blocking(id),
        }
    }

    /// Writes checkpoints compressed as `compression` says ([`FsStore::with_compression`]; the
    /// default is none for a directory and zstd for object storage).
    #[must_use]
    pub fn with_compression(self, compression: Compression) -> Store {
        match self {
            Store::Fs(store) => Store::Fs(store.with_compression(compression)),
            #[cfg(feature = "s3")]
            Store::Object(store) => Store::Object(store.with_compression(compression)),
        }
    }

    /// Writes checkpoints incrementally, a full one every `full_every`
    /// ([`FsStore::with_incremental`]).
    #[must_use]
    pub fn with_incremental(self, full_every: u32) -> Store {
        match self {
            Store::Fs(store) => Store::Fs(store.with_incremental(full_every)),
            #[cfg(feature = "s3")]
            Store::Object(store) => Store::Object(store.with_incremental(full_every)),
        }
    }

    /// The store as a blocking [`CheckpointStore`].
    fn blocking(&self) -> &dyn CheckpointStore {
        match self {
            Store::Fs(store) => store,
            #[cfg(feature = "s3")]
            Store::Object(store) => store,
        }
    }

    /// The store as an [`AsyncCheckpointStore`].
    #[cfg(feature = "s3")]
    fn nonblocking(&self) -> &dyn AsyncCheckpointStore {
        match self {
            Store::Fs(store) => store,
            Store::Object(store) => store,
        }
    }
}

/// Whether `s` is a URL scheme (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`): a
/// path such as `/tmp/x://y` is a path, not a URL.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

impl CheckpointStore for Store {
    fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        self.blocking().save(checkpoint)
    }

    fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        self.blocking().ids()
    }

    fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        self.blocking().list()
    }

    fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        self.blocking().load(id)
    }

    fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        self.blocking().remove(id)
    }

    fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.blocking().latest()
    }

    fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        self.blocking().latest_valid()
    }

    fn next_id(&self) -> Result<CheckpointId, StoreError> {
        self.blocking().next_id()
    }
}

#[cfg(feature = "s3")]
#[async_trait::async_trait]
impl AsyncCheckpointStore for Store {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        self.nonblocking().save(checkpoint).await
    }

    async fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        self.nonblocking().ids().await
    }

    async fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        self.nonblocking().list().await
    }

    async fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        self.nonblocking().load(id).await
    }

    async fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        self.nonblocking().remove(id).await
    }

    async fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.nonblocking().latest().await
    }

    async fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        self.nonblocking().latest_valid().await
    }

    async fn next_id(&self) -> Result<CheckpointId, StoreError> {
        self.nonblocking().next_id().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_of(store: Store) -> PathBuf {
        match store {
            Store::Fs(store) => store.dir().to_owned(),
            #[allow(unreachable_patterns)]
            other => panic!("not a directory: {other:?}"),
        }
    }

    #[test]
    fn paths_and_file_urls_open_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a b");
        let encoded = format!("file://{}", tmp.path().join("a%20b").display());
        for url in
            [dir.display().to_string(), encoded, format!("file://localhost{}", dir.display())]
        {
            assert_eq!(dir_of(Store::from_url(&url).unwrap()), dir, "{url}");
        }
        assert!(dir.is_dir());
        // Readers do not create directories.
        let missing = tmp.path().join("missing");
        for url in [missing.display().to_string(), format!("file://{}", missing.display())] {
            match Store::open_existing(&url) {
                Err(StoreError::Io { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(!missing.exists());
        assert_eq!(dir_of(Store::open_existing(dir.to_str().unwrap()).unwrap()), dir);
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        match Store::open_existing(file.to_str().unwrap()) {
            Err(StoreError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory)
            }
            other => panic!("{other:?}"),
        }
        assert!(Store::is_url("s3://b/p") && Store::is_url("file:///x"));
        assert!(!Store::is_url("/tmp/x://y") && !Store::is_url("dir"));
        // A path that merely contains "://" is a path.
        let odd = tmp.path().join("x://y");
        assert_eq!(dir_of(Store::from_url(odd.to_str().unwrap()).unwrap()), odd);
        assert!(is_scheme("s3") && is_scheme("git+ssh") && !is_scheme("/tmp/x") && !is_scheme(""));
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        for url in ["file://relative/dir", "gs://bucket/x", "http://host/x", "file:///%ff"] {
            match Store::from_url(url) {
                Err(StoreError::Url { url: named, .. }) => assert_eq!(named, url),
                other => panic!("{url}: {other:?}"),
            }
        }
        let s3 = Store::from_url("s3://bucket/prefix");
        #[cfg(feature = "s3")]
        assert!(matches!(s3, Ok(Store::Object(_))), "{s3:?}");
        #[cfg(not(feature = "s3"))]
        assert!(
            matches!(&s3, Err(StoreError::Url { reason, .. }) if reason.contains("feature `s3`")),
            "{s3:?}"
        );
    }
}
