//! An error and its causes as one line of text, for messages and logs.

use std::error::Error;

/// `error: cause: cause…`.
pub fn error_chain(err: &dyn Error) -> String {
    join(err, false)
}

/// [`error_chain`] without the causes whose text the line already holds
/// (errors that repeat their cause in their own text).
pub fn error_chain_deduped(err: &dyn Error) -> String {
    join(err, true)
}

fn join(err: &dyn Error, skip_repeated: bool) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !(skip_repeated && out.contains(&text)) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |cause, text| {
                Some(Layer {
                    text,
                    cause: cause.map(Box::new),
                })
            })
            .unwrap_or(Layer {
                text: "",
                cause: None,
            })
    }

    #[test]
    fn joins_every_cause() {
        let err = layers(&["request failed: timed out", "timed out", "os error 110"]);
        assert_eq!(
            error_chain(&err),
            "request failed: timed out: timed out: os error 110"
        );
        assert_eq!(
            error_chain_deduped(&err),
            "request failed: timed out: os error 110"
        );
        assert_eq!(error_chain(&layers(&["alone"])), "alone");
    }
}
