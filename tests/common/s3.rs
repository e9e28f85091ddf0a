//! S3 helpers for the tests against moto (the `aws` and `cloudflare` providers).
#![cfg(feature = "aws")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use edgeship_providers::aws::sdk::aws_sdk_s3;

/// `cmd` seeing only the given AWS credentials: no profile files, no instance role, no
/// endpoint or region from the environment.
pub fn with_credentials(cmd: &mut Command, sandbox: &Path, access_key: &str, secret: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", sandbox.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.join("no-aws-credentials"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION");
}

/// Every object in `bucket` with its last-modified time.
pub async fn objects(s3: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            found.insert(
                object.key().unwrap().to_string(),
                format!("{:?}", object.last_modified()),
            );
        }
    }
    found
}

/// Keys whose last-modified time differs between two listings (objects PUT again).
pub fn rewritten(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(key, modified)| before.get(*key) != Some(modified))
        .map(|(key, _)| key.clone())
        .collect()
}

/// The keys of `listing` that store `paths`: each file and its `.br`/`.gz`/`.zst` variants.
pub fn objects_of(listing: &BTreeMap<String, String>, paths: &[&str]) -> BTreeSet<String> {
    listing
        .keys()
        .filter(|key| {
            paths.iter().any(|path| {
                key.strip_prefix(path)
                    .is_some_and(|rest| ["", ".br", ".gz", ".zst"].contains(&rest))
            })
        })
        .cloned()
        .collect()
}
