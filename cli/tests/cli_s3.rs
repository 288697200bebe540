//! `amber list`, `inspect`, `stats` and `diff` on checkpoints a running bank wrote to an S3
//! bucket (moto's server on 127.0.0.1), named by `s3://` URLs. Feature `s3`.

#[path = "../../snapshot/tests/s3_support/mod.rs"]
mod s3_support;
mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use amber::prelude::*;
use amber::snapshot::object_store::aws::AmazonS3Builder;
use amber::snapshot::object_store::path::Path;
use amber::snapshot::object_store::{ObjectStore, PutPayload};
use amber::snapshot::{CheckpointId, CheckpointStore, ObjectStoreCheckpoints};
use s3_support::S3Server;
use support::{Account, EACH, assert_fails, bounded, money, spawn_accounts, start_trading, stdout};

const ACCOUNTS: usize = 16;

/// Runs `amber` with the server's AWS environment.
fn amber_s3(server: &S3Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber"))
        .args(args)
        .env_remove("AWS_PROFILE")
        .envs(server.env())
        .output()
        .unwrap()
}

/// Runs `amber` with the server's AWS environment, asserting that it succeeded quietly.
fn ok_s3(server: &S3Server, args: &[&str]) -> String {
    let output = amber_s3(server, args);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
    assert_eq!(err, "", "{args:?}");
    stdout(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_inspect_a_bank_in_a_bucket() {
    let Some(server) = S3Server::start() else { return };
    server.create_bucket("bank");
    let s3: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&server.endpoint)
            .with_allow_http(true)
            .with_bucket_name("bank")
            .with_access_key_id(s3_support::ACCESS_KEY)
            .with_secret_access_key(s3_support::SECRET_KEY)
            .with_region(s3_support::REGION)
            .build()
            .unwrap(),
    );
    // A running bank checkpoints to the bucket through the runtime's (blocking) store calls.
    let store = Arc::new(
        ObjectStoreCheckpoints::new(Arc::clone(&s3), Path::from("runs/1"))
            .with_url_base("s3://bank")
            .with_retention(3),
    );
    let system = ActorSystem::builder().register::<Account>().build();
    let accounts = spawn_accounts(&system, ACCOUNTS);
    start_trading(&accounts, &accounts).await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        bounded(system.checkpoint(&store)).await.expect("checkpoint to S3");
    }
    bounded(system.shutdown()).await;
    // Not a checkpoint: ignored by every command.
    s3.put(&Path::from("runs/1/.ckpt-00000000000000000009.amber.tmp"), PutPayload::from("x"))
        .await
        .unwrap();

    // Retention kept the last three.
    let listing = ok_s3(&server, &["list", "s3://bank/runs/1"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    for (line, id) in lines.iter().zip(2..) {
        assert!(line.starts_with(&format!("ckpt-{id:020} ")), "{line}");
        assert!(line.contains(&format!("actors={ACCOUNTS}")), "{line}");
        let bytes: u64 = line.rsplit("bytes=").next().unwrap().parse().unwrap();
        let key = store.key_of(CheckpointId(id));
        assert_eq!(bytes, s3.head(&key).await.unwrap().size, "{line}");
    }
    assert_eq!(ok_s3(&server, &["list", "s3://bank/runs/1/"]), listing);

    // The newest, by --latest, by --store and id, and by its object's URL: the money adds up.
    let latest_url = "s3://bank/runs/1/ckpt-00000000000000000004.amber";
    for args in [
        &["inspect", "s3://bank/runs/1", "--latest", "--json"][..],
        &["inspect", "--store", "s3://bank/runs/1", "latest", "--json"],
        &["inspect", "--store", "s3://bank/runs/1", "4", "--json"],
        &["inspect", latest_url, "--json"],
    ] {
        let inspect: serde_json::Value =
            serde_json::from_str(&ok_s3(&server, args)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(inspect["checkpoint"]["id"], 4, "{args:?}");
        assert_eq!(inspect["actors"].as_array().unwrap().len(), ACCOUNTS, "{args:?}");
        let (balances, in_flight) = money(&inspect);
        assert_eq!(balances + in_flight, ACCOUNTS as u64 * EACH, "{args:?}");
    }
    let text = ok_s3(&server, &["inspect", latest_url, "--summary"]);
    assert!(text.contains(latest_url), "{text}");
    let diff = ok_s3(&server, &["diff", "--store", "s3://bank/runs/1", "latest~1", "latest"]);
    assert!(diff.contains("ckpt-00000000000000000003") && diff.contains(latest_url), "{diff}");
    let stats = ok_s3(&server, &["stats", "s3://bank/runs/1", "--json"]);
    assert_eq!(stats.lines().count(), 3, "{stats}");

    // What the library sees is what the tool showed.
    let ids = tokio::task::spawn_blocking(move || store.ids().unwrap()).await.unwrap();
    assert_eq!(ids, [CheckpointId(2), CheckpointId(3), CheckpointId(4)]);

    // An empty prefix is an empty store; a missing bucket and a tampered object are errors
    // naming what failed (exit code 1), not panics.
    assert_eq!(ok_s3(&server, &["list", "s3://bank/nothing-here"]), "");
    assert_fails(
        &amber_s3(&server, &["list", "s3://no-such-bucket/x"]),
        1,
        &["s3://no-such-bucket/x"],
    );
    let key = Path::from("runs/1/ckpt-00000000000000000003.amber");
    let mut bytes = s3.get(&key).await.unwrap().bytes().await.unwrap().to_vec();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x01;
    s3.put(&key, PutPayload::from(bytes)).await.unwrap();
    let output = amber_s3(&server, &["list", "s3://bank/runs/1"]);
    assert_fails(
        &output,
        1,
        &["s3://bank/runs/1/ckpt-00000000000000000003.amber", "checksum mismatch"],
    );
    assert_eq!(stdout(&output).lines().count(), 2, "the others are still listed");
    assert_fails(
        &amber_s3(&server, &["inspect", "s3://bank/runs/1/not-a-checkpoint", "--json"]),
        2,
        &["not-a-checkpoint"],
    );
}
