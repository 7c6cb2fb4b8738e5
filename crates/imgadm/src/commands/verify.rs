//! `imgadm verify UUID [--trust ALLOWED_SIGNERS]`: the publisher's check of
//! an image's signatures, each verified here against the statement rebuilt
//! from the manifest the server serves.

use serde_json::{json, Value};

use super::signatures::{self, Refusal};
use super::{label, print_json, Ctx, Failure};
use crate::cli::VerifyArgs;
use crate::output;
use crate::stdout::out;

pub async fn run(ctx: &Ctx, args: VerifyArgs) -> Result<(), Failure> {
    let trust = match &args.trust {
        Some(path) => Some((signatures::read_trust(path)?, path)),
        None => None,
    };
    let image = ctx.client.get_image(&args.uuid).await?;
    let refuse = |why: String| Failure::other(format!("image {}: {why}", label(&image)));
    let listed = signatures::fetch(&ctx.client, &args.uuid)
        .await
        .map_err(|e| e.into_failure(&ctx.client))?;
    let statement =
        signatures::checked_statement(&image, &listed).map_err(|r| refuse(r.to_string()))?;
    let checked = signatures::verify_all(&statement, &listed.signatures);
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    let (mut valid, mut trusted) = (0, 0);
    for c in &checked {
        let mut row = json!({
            "id": c.signature.id,
            "fingerprint": signatures::display_fingerprint(c.signature),
            "algorithm": c.signature.algorithm,
            "role": c.signature.role.as_deref().unwrap_or("-"),
            "valid": c.result.is_ok(),
        });
        match &c.result {
            Ok(verified) => {
                valid += 1;
                if let Some((trust, _)) = &trust {
                    let signer = trust.trusted(verified, now);
                    if signer.is_some() {
                        trusted += 1;
                    }
                    row["trusted"] = signer.map_or(Value::Null, |s| json!(s.principals));
                }
            }
            Err(e) => {
                row["error"] = json!(e.to_string());
                if trust.is_some() {
                    row["trusted"] = Value::Null;
                }
            }
        }
        if c.signature.valid != c.result.is_ok() {
            eprintln!(
                "imgadm: warning: the server says the signature by {} is {}, imgadm finds it {}",
                signatures::display_fingerprint(c.signature),
                validity(c.signature.valid),
                validity(c.result.is_ok())
            );
        }
        rows.push(row);
    }
    if ctx.json {
        print_json(&Value::Array(rows.clone()))?;
    } else if !rows.is_empty() {
        let mut columns: Vec<String> = ["fingerprint", "algorithm", "role", "valid"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        if trust.is_some() {
            columns.push("trusted".to_string());
        }
        for row in &mut rows {
            row["valid"] = json!(if row["valid"] == json!(true) {
                "yes"
            } else {
                "no"
            });
        }
        out!("{}", output::table(&columns, &rows, true))?;
        for row in &rows {
            if let Some(e) = row["error"].as_str() {
                eprintln!(
                    "imgadm: {}: {e}",
                    row["fingerprint"].as_str().unwrap_or("?")
                );
            }
        }
    }
    if checked.is_empty() {
        return Err(refuse(Refusal::NoSignatures.to_string()));
    }
    if valid == 0 {
        return Err(refuse("no valid signature".to_string()));
    }
    if let Some((_, path)) = &trust {
        if trusted == 0 {
            return Err(refuse(format!(
                "no valid signature by a key of {}",
                path.display()
            )));
        }
    }
    Ok(())
}

fn validity(valid: bool) -> &'static str {
    if valid {
        "valid"
    } else {
        "invalid"
    }
}
