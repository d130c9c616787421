//! What a misbehaving Bastion front end answers: the HTTP fault a knob asks for, and the
//! Tomcat-style error page written in-band on an upgraded socket (see `docs/protocol.md`).

use super::faults::HttpFault;
use crate::respond::{self, Resp};

/// The response a configured [`HttpFault`] asks for.
pub(crate) fn fault_response(f: &HttpFault) -> Resp {
    if f.html {
        respond::html_error(f.status)
    } else {
        respond::error(f.status, &f.message, None)
    }
}

/// A raw HTTP/1.1 response with a Tomcat-style error page, as the service reportedly writes
/// on an upgraded socket (see docs/protocol.md#in-band-http-errors).
pub(crate) fn tomcat_in_band(code: u16) -> Vec<u8> {
    let r = respond::reason(code);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><title>HTTP Status {code} \u{2013} {r}</title><style type=\"text/css\">body {{font-family:Tahoma,Arial,sans-serif;}} h1, h2, h3, b {{color:white;background-color:#525D76;}} h1 {{font-size:22px;}} .line {{height:1px;background-color:#525D76;border:none;}}</style></head><body><h1>HTTP Status {code} \u{2013} {r}</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p><p><b>Description</b> The server cannot or will not process the request due to something that is perceived to be a client error (e.g., malformed request syntax, invalid request message framing, or deceptive request routing).</p><hr class=\"line\" /><h3>Apache Tomcat</h3></body></html>"
    );
    let date = httpdate_now();
    format!(
        "HTTP/1.1 {code} {r}\r\nContent-Type: text/html;charset=utf-8\r\nContent-Language: en\r\nContent-Length: {}\r\nDate: {date}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn httpdate_now() -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_band_page_is_http() {
        let page = String::from_utf8(tomcat_in_band(400)).unwrap();
        assert!(page.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(page.contains("Apache Tomcat"));
        let (head, body) = page.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
