//! Building requests: the body template, the envelope around it, and the HTTP headers that
//! differ between SOAP 1.1 and 1.2.
//!
//! Contract: a template is checked once ([`RequestTemplate::parse`]): every placeholder is
//! known and the XML is well-formed with sample values. Filling it in XML-escapes every
//! value, so a cursor taken from an answer cannot change the request's structure.

use chrono::NaiveDate;
use quick_xml::events::Event;

use super::config::SoapVersion;

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 3] = ["cursor", "page", "today"];

/// The values filled into a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVars {
    /// The operation's cursor: the highest cursor value of the last complete pass.
    pub cursor: String,
    /// The page asked for.
    pub page: u32,
    /// The date of the call (UTC), written `YYYY-MM-DD`.
    pub today: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Cursor,
    Page,
    Today,
}

/// A parsed body template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    parts: Vec<Part>,
}

impl RequestTemplate {
    /// Parses `text`; the error says which placeholder or which XML problem.
    pub fn parse(text: &str) -> Result<RequestTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("a `{{` is never closed by `}}`".to_owned());
            };
            let name = after[..close].trim();
            parts.push(match name {
                "cursor" => Part::Cursor,
                "page" => Part::Page,
                "today" => Part::Today,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{{{other}}}}}`; known: {}",
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{{{p}}}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let template = RequestTemplate { parts };
        let sample = template.render(&TemplateVars {
            cursor: "2024-01-01T00:00:00Z".to_owned(),
            page: 1,
            today: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
        })?;
        check_fragment(&sample)?;
        Ok(template)
    }

    /// Whether the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                (p, name),
                (Part::Cursor, "cursor") | (Part::Page, "page") | (Part::Today, "today")
            )
        })
    }

    /// The body with the values filled in, XML-escaped.
    pub fn render(&self, vars: &TemplateVars) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Cursor => {
                    out.push_str(&xml_escape(&vars.cursor).ok_or_else(|| {
                        "the cursor holds a character xml cannot carry".to_owned()
                    })?)
                }
                Part::Page => out.push_str(&vars.page.to_string()),
                Part::Today => out.push_str(&vars.today.format("%Y-%m-%d").to_string()),
            }
        }
        Ok(out)
    }
}

/// `s` with `& < > " '` escaped; `None` when it holds a character XML 1.0 cannot carry.
pub fn xml_escape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Checks that `xml` is a well-formed fragment: tags balanced, no DTD.
fn check_fragment(xml: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut elements = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                elements += 1;
            }
            Ok(Event::Empty(_)) => elements += 1,
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::DocType(_)) => return Err("a DTD is not allowed".to_owned()),
            Ok(Event::Decl(_)) => {
                return Err("the template is the body only: no xml declaration".to_owned());
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "not well-formed xml at byte {}: {e}",
                    reader.error_position()
                ));
            }
        }
    }
    if depth != 0 {
        return Err("not well-formed xml: an element is never closed".to_owned());
    }
    if elements == 0 {
        return Err("holds no element".to_owned());
    }
    Ok(())
}

/// The whole request document: `security` (a `wsse:Security` element) goes into the
/// header, `body` into the body.
pub fn build_envelope(version: SoapVersion, security: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 512);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    out.push_str("<soap:Envelope xmlns:soap=\"");
    out.push_str(version.namespace());
    out.push_str("\">");
    if let Some(h) = security {
        out.push_str("<soap:Header>");
        out.push_str(h);
        out.push_str("</soap:Header>");
    }
    out.push_str("<soap:Body>");
    out.push_str(body);
    out.push_str("</soap:Body></soap:Envelope>");
    out
}

/// The `Content-Type` of a request.
pub fn content_type(version: SoapVersion, action: &str) -> String {
    match version {
        SoapVersion::V11 => "text/xml; charset=utf-8".to_owned(),
        SoapVersion::V12 if action.is_empty() => "application/soap+xml; charset=utf-8".to_owned(),
        SoapVersion::V12 => format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
    }
}

/// The `SOAPAction` header value (SOAP 1.1 only; quoted, as the 1.1 note shows it).
pub fn soap_action_header(version: SoapVersion, action: &str) -> Option<String> {
    match version {
        SoapVersion::V11 => Some(format!("\"{action}\"")),
        SoapVersion::V12 => None,
    }
}
