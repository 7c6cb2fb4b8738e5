use std::path::Path;

use super::{label, Ctx, Failure};
use crate::cli::AddIconArgs;

/// The icon content type for a file name: by extension, case-insensitive.
pub fn content_type(path: &Path) -> Result<&'static str, Failure> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok("image/png"),
        Some("gif") => Ok("image/gif"),
        Some("jpg" | "jpeg") => Ok("image/jpeg"),
        _ => Err(Failure::usage(format!(
            "cannot tell the icon type of {}: name it .png, .gif, .jpg or .jpeg",
            path.display()
        ))),
    }
}

pub async fn run(ctx: &Ctx, args: AddIconArgs) -> Result<(), Failure> {
    let content_type = content_type(&args.file)?;
    match std::fs::metadata(&args.file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Failure::usage(format!(
                "{} is not a file",
                args.file.display()
            )))
        }
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read icon {}: {e}",
                args.file.display()
            )))
        }
    }
    let image = ctx
        .client
        .add_image_icon(&args.uuid, &args.file, content_type)
        .await?;
    ctx.print_image(
        &format!(
            "Added icon {} ({content_type}) to image {}",
            args.file.display(),
            label(&image)
        ),
        &image,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_from_extension() {
        assert_eq!(content_type(Path::new("a.PNG")).unwrap(), "image/png");
        assert_eq!(content_type(Path::new("a.gif")).unwrap(), "image/gif");
        assert_eq!(content_type(Path::new("x/a.jpg")).unwrap(), "image/jpeg");
        assert_eq!(content_type(Path::new("a.jpeg")).unwrap(), "image/jpeg");
        assert_eq!(content_type(Path::new("a.svg")).unwrap_err().exit, 2);
        assert_eq!(content_type(Path::new("icon")).unwrap_err().exit, 2);
    }
}
