//! S3 helpers for the tests against moto (the `aws` and `cloudflare` providers).
#![cfg(feature = "aws")]

use std::collections::BTreeMap;
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
