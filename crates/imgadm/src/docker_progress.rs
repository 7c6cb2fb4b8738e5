//! Shows a docker import or push as `docker pull` / `docker push` do: one
//! line per layer (its short id, status and, while bytes move, how many),
//! redrawn in place when stderr is a terminal, else printed as plain lines
//! on stdout, one per change of a layer's status.

use std::collections::HashMap;
use std::io::IsTerminal;

use imgapi_client::docker::{DockerMessage, DockerProgress, DockerProgressDetail};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::commands::Failure;
use crate::stdout::outln;

/// How the progress is drawn.
enum Drawing {
    /// Bars on stderr, one per layer, in the order layers first appear.
    Terminal {
        bars: MultiProgress,
        layers: HashMap<String, ProgressBar>,
    },
    /// Lines on stdout.
    Plain,
    /// Nothing (`-j` prints the messages themselves).
    Quiet,
}

/// The layers seen so far and how they are drawn.
pub struct DockerProgressView {
    drawing: Drawing,
    /// Each layer's latest status, in the order layers first appeared.
    layers: Vec<(String, String)>,
}

impl DockerProgressView {
    /// Bars when stderr is a terminal, else plain lines; nothing when
    /// `quiet`.
    pub fn new(quiet: bool) -> DockerProgressView {
        let drawing = if quiet {
            Drawing::Quiet
        } else if std::io::stderr().is_terminal() {
            Drawing::Terminal {
                bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                layers: HashMap::new(),
            }
        } else {
            Drawing::Plain
        };
        DockerProgressView {
            drawing,
            layers: Vec::new(),
        }
    }

    /// Show a status or progress message.
    pub fn show(&mut self, message: &DockerMessage) -> Result<(), Failure> {
        let (DockerMessage::Status(m) | DockerMessage::Progress(m)) = message else {
            return Ok(());
        };
        let payload = &m.payload;
        let Some(layer) = &payload.id else {
            return match &payload.status {
                Some(status) => self.print_line(status),
                None => Ok(()),
            };
        };
        let status = payload.status.clone().unwrap_or_default();
        let previous = self.record(layer, &status);
        match &mut self.drawing {
            Drawing::Terminal { bars, layers } => {
                let bar = layers
                    .entry(layer.clone())
                    .or_insert_with(|| bars.add(new_layer_bar(layer)));
                draw(bar, payload);
            }
            Drawing::Plain => {
                if previous.as_deref() != Some(status.as_str()) {
                    outln!("{}", plain_line(layer, payload))?;
                }
            }
            Drawing::Quiet => {}
        }
        Ok(())
    }

    /// Remember `layer`'s status; returns the one it had.
    fn record(&mut self, layer: &str, status: &str) -> Option<String> {
        match self.layers.iter_mut().find(|(id, _)| id == layer) {
            Some((_, last)) => Some(std::mem::replace(last, status.to_string())),
            None => {
                self.layers.push((layer.to_string(), status.to_string()));
                None
            }
        }
    }

    /// Print a line about the whole operation. On a terminal the layers
    /// drawn so far stay as they are, above it, as `docker pull` leaves them
    /// before its `Digest:` line.
    pub fn print_line(&mut self, line: &str) -> Result<(), Failure> {
        match &mut self.drawing {
            Drawing::Terminal { bars, layers } => {
                for bar in layers.values() {
                    bar.finish();
                }
                if !layers.is_empty() {
                    layers.clear();
                    *bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                }
                outln!("{line}")
            }
            Drawing::Plain => outln!("{line}"),
            Drawing::Quiet => Ok(()),
        }
    }

    /// How many layers have a status starting with one of `done`, of all
    /// layers seen.
    pub fn tally(&self, done: &[&str]) -> (usize, usize) {
        let finished = self
            .layers
            .iter()
            .filter(|(_, status)| done.iter().any(|d| status.starts_with(d)))
            .count();
        (finished, self.layers.len())
    }

    /// Leave every layer's last line on the screen.
    pub fn finish(&mut self) {
        if let Drawing::Terminal { layers, .. } = &self.drawing {
            for bar in layers.values() {
                bar.finish();
            }
        }
    }
}

impl Drop for DockerProgressView {
    fn drop(&mut self) {
        if let Drawing::Terminal { layers, .. } = &self.drawing {
            for bar in layers.values().filter(|bar| !bar.is_finished()) {
                bar.abandon();
            }
        }
    }
}

/// Bytes moved and the layer's size, when the message has both.
fn transfer(payload: &DockerProgress) -> Option<(u64, u64)> {
    match payload.progress_detail {
        Some(DockerProgressDetail {
            current: Some(current),
            total: Some(total),
            ..
        }) if total > 0 => Some((current, total)),
        _ => None,
    }
}

/// `0123456789ab: Downloading 1.00 MiB/2.50 MiB`, `0123456789ab: Pushed`.
pub fn plain_line(layer: &str, payload: &DockerProgress) -> String {
    let status = payload.status.as_deref().unwrap_or_default();
    match transfer(payload) {
        Some((current, total)) => format!(
            "{layer}: {status} {}/{}",
            HumanBytes(current),
            HumanBytes(total)
        ),
        None => format!("{layer}: {status}"),
    }
}

fn new_layer_bar(layer: &str) -> ProgressBar {
    // Hidden until styled: the default style would flash a bar first.
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    set_template(&bar, TEXT_TEMPLATE);
    bar.set_prefix(layer.to_string());
    bar
}

fn set_template(bar: &ProgressBar, template: &str) {
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
}

const TEXT_TEMPLATE: &str = "{prefix}: {msg}";
const BYTES_TEMPLATE: &str = "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes}";

fn draw(bar: &ProgressBar, payload: &DockerProgress) {
    let status = payload.status.clone().unwrap_or_default();
    let transfer = transfer(payload);
    let template = if transfer.is_some() {
        BYTES_TEMPLATE
    } else {
        TEXT_TEMPLATE
    };
    set_template(bar, template);
    if let Some((current, total)) = transfer {
        bar.set_length(total);
        bar.set_position(current);
    }
    bar.set_message(status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgapi_client::docker::DockerProgressMessage;

    fn progress(layer: Option<&str>, status: &str, detail: Option<(u64, u64)>) -> DockerMessage {
        DockerMessage::Progress(DockerProgressMessage {
            payload: DockerProgress {
                id: layer.map(str::to_string),
                progress_detail: detail.map(|(current, total)| DockerProgressDetail {
                    current: Some(current),
                    total: Some(total),
                    start: None,
                }),
                status: Some(status.to_string()),
                aux: None,
            },
            id: "docker.io/busybox".to_string(),
        })
    }

    #[test]
    fn plain_lines_show_bytes_while_transferring() {
        let DockerMessage::Progress(m) = progress(
            Some("0123456789ab"),
            "Downloading",
            Some((1 << 20, 5 << 19)),
        ) else {
            unreachable!()
        };
        assert_eq!(
            plain_line("0123456789ab", &m.payload),
            "0123456789ab: Downloading 1.00 MiB/2.50 MiB"
        );
        let DockerMessage::Progress(m) = progress(Some("0123456789ab"), "Pushed", None) else {
            unreachable!()
        };
        assert_eq!(
            plain_line("0123456789ab", &m.payload),
            "0123456789ab: Pushed"
        );
    }

    #[test]
    fn tallies_layers_by_their_last_status() {
        let mut view = DockerProgressView::new(true);
        assert!(view
            .show(&progress(None, "latest: Pulling from busybox", None))
            .is_ok());
        assert!(view
            .show(&progress(Some("aaaaaaaaaaaa"), "Pulling fs layer", None))
            .is_ok());
        assert!(view
            .show(&progress(Some("bbbbbbbbbbbb"), "Already exists", None))
            .is_ok());
        assert!(view
            .show(&progress(Some("aaaaaaaaaaaa"), "Downloading", Some((1, 2))))
            .is_ok());
        assert_eq!(view.tally(&["Pull complete", "Already exists"]), (1, 2));
        assert!(view
            .show(&progress(Some("aaaaaaaaaaaa"), "Pull complete", None))
            .is_ok());
        assert_eq!(view.tally(&["Pull complete", "Already exists"]), (2, 2));
    }
}
