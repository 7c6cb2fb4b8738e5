//! Credentials out of URLs before anything logs or shows them: the password
//! of a URL's user-info, the value of a query parameter whose name says it
//! is a secret (`token`, `password`, presigned-URL signatures, …), also
//! inside a query value that is itself a (percent-encoded) URL, such as
//! import-remote's `source=`. Everything else is kept byte for byte, so a
//! URL without secrets is returned unchanged (borrowed).

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A query parameter whose (lower-cased) name contains one of these is a
/// secret: `token`, `access_token`, `X-Amz-Security-Token`, `password`,
/// `client_secret`, `X-Amz-Signature`, `X-Amz-Credential`, ...
const SECRET_NAME_PARTS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "signature",
    "credential",
];
/// Secret parameter names too short to be matched as a part.
const SECRET_NAMES: &[&str] = &["sig"];

/// A redacted URL put back into a query value: percent-encoded like the
/// rest of the value, except the mask, so it stays readable.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'*');

/// Whether a query parameter of this name carries a secret.
pub fn is_secret_param(name: &str) -> bool {
    let name = percent_decode_str(name)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str()) || SECRET_NAME_PARTS.iter().any(|p| name.contains(p))
}

/// One URL, absolute (`https://bob:pw@host/p?token=x`) or a request target
/// (`/images/…?source=…`), with its secrets masked.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let head_redacted = redact_userinfo(head);
    let query_redacted = query.map(redact_query);
    let query_changed = matches!(query_redacted, Some(Cow::Owned(_)));
    if matches!(head_redacted, Cow::Borrowed(_)) && !query_changed {
        return Cow::Borrowed(url);
    }
    let mut out = head_redacted.into_owned();
    if let Some(query) = query_redacted {
        out.push('?');
        out.push_str(&query);
    }
    Cow::Owned(out)
}

/// Free text (an error message, a log line) with the secrets of every URL
/// in it masked. A URL ends at white space, a quote, `<`, `>` or a
/// backslash (so JSON-escaped text keeps its escapes); punctuation that
/// ends it is not part of it.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") && !text.contains('?') {
        return Cow::Borrowed(text);
    }
    let is_delimiter =
        |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\');
    let mut out = String::new();
    let mut copied_up_to = 0;
    let mut token_start = None;
    let boundaries = text
        .char_indices()
        .map(|(i, c)| (i, is_delimiter(c)))
        .chain(std::iter::once((text.len(), true)));
    for (i, delimits) in boundaries {
        match (token_start, delimits) {
            (None, false) => token_start = Some(i),
            (Some(start), true) => {
                token_start = None;
                // Punctuation after a URL ends the sentence, not the URL.
                let token = text[start..i].trim_end_matches(['.', ',', ';', ':', ')', ']']);
                if let Cow::Owned(redacted) = redact_url(token) {
                    out.push_str(&text[copied_up_to..start]);
                    out.push_str(&redacted);
                    copied_up_to = start + token.len();
                }
            }
            _ => {}
        }
    }
    if copied_up_to == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied_up_to..]);
    Cow::Owned(out)
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`. A user
/// without a password is kept (it names an account, not a secret).
fn redact_userinfo(head: &str) -> Cow<'_, str> {
    let Some(scheme_end) = head.find("://") else {
        return Cow::Borrowed(head);
    };
    let authority_start = scheme_end + 3;
    let rest = &head[authority_start..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(head);
    };
    let Some((user, password)) = authority[..at].split_once(':') else {
        return Cow::Borrowed(head);
    };
    if password == MASK {
        return Cow::Borrowed(head);
    }
    Cow::Owned(format!(
        "{}{user}:{MASK}{}",
        &head[..authority_start],
        &rest[at..]
    ))
}

fn redact_query(query: &str) -> Cow<'_, str> {
    let pairs: Vec<Cow<'_, str>> = query.split('&').map(redact_pair).collect();
    if pairs.iter().all(|p| matches!(p, Cow::Borrowed(_))) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(pairs.join("&"))
}

fn redact_pair(pair: &str) -> Cow<'_, str> {
    let Some((name, value)) = pair.split_once('=') else {
        return Cow::Borrowed(pair);
    };
    if is_secret_param(name) {
        if value == MASK {
            return Cow::Borrowed(pair);
        }
        return Cow::Owned(format!("{name}={MASK}"));
    }
    let decoded = percent_decode_str(value).decode_utf8_lossy();
    if !decoded.contains("://") {
        return Cow::Borrowed(pair);
    }
    match redact_url(&decoded) {
        Cow::Borrowed(_) => Cow::Borrowed(pair),
        Cow::Owned(redacted) if decoded == value => Cow::Owned(format!("{name}={redacted}")),
        Cow::Owned(redacted) => Cow::Owned(format!(
            "{name}={}",
            utf8_percent_encode(&redacted, QUERY_VALUE)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_password_is_masked() {
        assert_eq!(
            redact_url("https://bob:SECRET@host/"),
            "https://bob:***@host/"
        );
        assert_eq!(
            redact_url("postgres://imgapi:s3cret@db:5432/imgapi"),
            "postgres://imgapi:***@db:5432/imgapi"
        );
        assert_eq!(
            redact_url("http://u:p@[::1]:80/x?a=1"),
            "http://u:***@[::1]:80/x?a=1"
        );
        assert_eq!(redact_url("https://u:p@host"), "https://u:***@host");
        assert_eq!(redact_url("https://u:pw@h/"), "https://u:***@h/");
    }

    #[test]
    fn urls_without_secrets_are_borrowed_unchanged() {
        for url in [
            "postgres://u@db/x",
            "sqlite://./data/imgapi.sqlite",
            "/images?state=all&name=~base",
            "/images/x?action=import-remote&source=https%3A%2F%2Fimages.example%2F",
            "https://host/p?channel=staging#frag",
            "/ping",
            "https://h/",
            "",
        ] {
            assert!(
                matches!(redact_url(url), Cow::Borrowed(u) if u == url),
                "{url}"
            );
        }
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        assert_eq!(
            redact_url("/x?a=1&token=abc&password=p&passwd=q&secret=s&sig=g&b=2"),
            "/x?a=1&token=***&password=***&passwd=***&secret=***&sig=***&b=2"
        );
        assert_eq!(
            redact_url(
                "https://b.s3/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=ff00&X-Amz-Security-Token=t&X-Amz-Expires=60"
            ),
            "https://b.s3/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&X-Amz-Expires=60"
        );
        assert_eq!(redact_url("/x?Access_Token=z"), "/x?Access_Token=***");
        assert_eq!(redact_url("/x?design=1&signed=2"), "/x?design=1&signed=2");
    }

    #[test]
    fn a_url_inside_a_query_value_is_redacted_too() {
        assert_eq!(
            redact_url(
                "/images/u?action=import-remote&source=https%3A%2F%2Fbob%3ASECRETPASS%40host%2F"
            ),
            "/images/u?action=import-remote&source=https%3A%2F%2Fbob%3A***%40host%2F"
        );
        assert_eq!(
            redact_url("/images/u?action=import-remote&source=https://bob:SECRETPASS@host/"),
            "/images/u?action=import-remote&source=https://bob:***@host/"
        );
        assert_eq!(
            redact_url("/m?upstream=https%3A%2F%2Fh%2F%3Ftoken%3Dabc"),
            "/m?upstream=https%3A%2F%2Fh%2F%3Ftoken%3D***"
        );
    }

    #[test]
    fn text_keeps_everything_but_the_secrets() {
        assert_eq!(
            redact_text("error fetching https://bob:pw@h/x?token=t: connection refused"),
            "error fetching https://bob:***@h/x?token=***: connection refused"
        );
        assert_eq!(
            redact_text(
                r#"{"url":"/i?source=https://a:b@h/","cause":"GET \"https://a:b@h/?sig=1\" failed"}"#
            ),
            r#"{"url":"/i?source=https://a:***@h/","cause":"GET \"https://a:***@h/?sig=***\" failed"}"#
        );
        let plain = "image 1234 not found (really?)";
        assert!(matches!(redact_text(plain), Cow::Borrowed(t) if t == plain));
    }
}
