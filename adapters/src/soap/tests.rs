use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::config::{PasswordType, SoapConfig, SoapVersion, WsSecurityConfig};
use super::envelope::{RequestTemplate, TemplateVars, build_envelope, content_type, xml_escape};
use super::error::SoapError;
use super::fault::{FaultClass, SoapFault, parse_fault};
use super::response::{ReadError, RecordReader, element_to_json, probe_fault};
use super::wsse::{self, UsernameToken};
use super::*;

const NS11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS12: &str = "http://www.w3.org/2003/05/soap-envelope";
const MB: u64 = 1 << 20;

fn vars(cursor: &str, page: u32) -> TemplateVars {
    TemplateVars {
        cursor: cursor.to_owned(),
        page,
        today: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
    }
}

fn read_all(xml: &str, path: &str) -> (Vec<serde_json::Value>, Option<ReadError>) {
    let reader = RecordReader::new(xml.as_bytes(), path, None, 16 * MB).unwrap();
    let mut out = Vec::new();
    for item in reader {
        match item {
            Ok(r) => out.push(r.value),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn parse_err(xml: &str, path: &str) -> super::error::ParseError {
    match read_all(xml, path).1 {
        Some(ReadError::Parse(p)) => p,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

// ---------- requests ----------

#[test]
fn soap11_envelope_and_headers() {
    let doc = build_envelope(SoapVersion::V11, None, "<m:Ping xmlns:m=\"urn:x\"/>");
    assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
    assert!(doc.contains(&format!("<soap:Envelope xmlns:soap=\"{NS11}\">")));
    assert!(!doc.contains("soap:Header"));
    assert!(doc.contains("<soap:Body><m:Ping xmlns:m=\"urn:x\"/></soap:Body></soap:Envelope>"));
    assert_eq!(
        content_type(SoapVersion::V11, "urn:a"),
        "text/xml; charset=utf-8"
    );
    assert_eq!(
        envelope::soap_action_header(SoapVersion::V11, "http://web.cbr.ru/GetCursOnDateXML"),
        Some("\"http://web.cbr.ru/GetCursOnDateXML\"".to_owned())
    );
    // The envelope parses back as an envelope of its version with an empty fault probe.
    assert_eq!(
        probe_fault(doc.as_bytes(), Some(SoapVersion::V11), MB),
        Ok(None)
    );
}

#[test]
fn soap12_envelope_and_headers() {
    let doc = build_envelope(SoapVersion::V12, Some("<h/>"), "<Ping/>");
    assert!(doc.contains(&format!("<soap:Envelope xmlns:soap=\"{NS12}\">")));
    assert!(doc.contains("<soap:Header><h/></soap:Header><soap:Body><Ping/></soap:Body>"));
    assert_eq!(
        content_type(SoapVersion::V12, "urn:bank:GetCustomers"),
        "application/soap+xml; charset=utf-8; action=\"urn:bank:GetCustomers\""
    );
    assert_eq!(
        content_type(SoapVersion::V12, ""),
        "application/soap+xml; charset=utf-8"
    );
    assert_eq!(envelope::soap_action_header(SoapVersion::V12, "x"), None);
    assert_eq!(
        probe_fault(doc.as_bytes(), Some(SoapVersion::V12), MB),
        Ok(None)
    );
}

#[test]
fn template_fills_placeholders_escaped() {
    let t = RequestTemplate::parse(
        "<b:Get xmlns:b=\"urn:bank\"><b:Since>{{cursor}}</b:Since><b:Page>{{ page }}</b:Page><b:On>{{today}}</b:On></b:Get>",
    )
    .unwrap();
    assert!(t.uses("cursor") && t.uses("page") && t.uses("today"));
    let body = t.render(&vars("a<b&\"c'</b:Since><x>", 7)).unwrap();
    assert_eq!(
        body,
        "<b:Get xmlns:b=\"urn:bank\"><b:Since>a&lt;b&amp;&quot;c&apos;&lt;/b:Since&gt;&lt;x&gt;</b:Since><b:Page>7</b:Page><b:On>2024-03-01</b:On></b:Get>"
    );
    // A control character cannot travel in XML 1.0: an error, not a broken request.
    assert!(t.render(&vars("a\u{1}b", 1)).is_err());
    assert_eq!(xml_escape("x\ty"), Some("x\ty".to_owned()));
}

#[test]
fn template_problems_are_named() {
    let e = RequestTemplate::parse("<a>{{since}}</a>").unwrap_err();
    assert!(e.contains("unknown placeholder `{{since}}`"), "{e}");
    let e = RequestTemplate::parse("<a>{{cursor</a>").unwrap_err();
    assert!(e.contains("never closed"), "{e}");
    let e = RequestTemplate::parse("<a><b></a>").unwrap_err();
    assert!(e.contains("not well-formed"), "{e}");
    let e = RequestTemplate::parse("<a>").unwrap_err();
    assert!(e.contains("never closed"), "{e}");
    let e = RequestTemplate::parse("just text").unwrap_err();
    assert!(e.contains("no element"), "{e}");
    let e = RequestTemplate::parse("<?xml version=\"1.0\"?><a/>").unwrap_err();
    assert!(e.contains("body only"), "{e}");
}

// ---------- WS-Security ----------

#[test]
fn password_digest_vectors() {
    // Computed independently (Python hashlib/base64) for these inputs.
    assert_eq!(
        wsse::password_digest(
            &(0u8..16).collect::<Vec<_>>(),
            "2024-03-01T10:15:30.123Z",
            "P@ss&word<1>"
        ),
        "QT5vWCWrxU1LS23bJAezR+7Chl4="
    );
    let nonce = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "WScqanjCEAC4mQoBE07sAQ==",
    )
    .unwrap();
    assert_eq!(
        wsse::password_digest(&nonce, "2003-07-16T01:24:32Z", "IloveDogs"),
        "cywFYG+KaPMK3PCWR+m+DWtqzac="
    );
    // The password's UTF-8 bytes.
    assert_eq!(
        wsse::password_digest(&nonce, "2003-07-16T01:24:32Z", "пароль"),
        "StpL18CbIQNY8ezFJWhfFEXhr2o="
    );
}

fn ws(password_type: PasswordType) -> WsSecurityConfig {
    WsSecurityConfig {
        username: "hub&crm".into(),
        password: "P@ss&word<1>".into(),
        password_type,
    }
}

#[test]
fn digest_header_carries_nonce_created_and_digest() {
    let created =
        Utc.with_ymd_and_hms(2024, 3, 1, 10, 15, 30).unwrap() + chrono::Duration::milliseconds(123);
    let nonce: Vec<u8> = (0u8..16).collect();
    let h = wsse::security_header(&ws(PasswordType::Digest), &nonce, created).unwrap();
    assert!(
        h.contains("<wsse:Username>hub&amp;crm</wsse:Username>"),
        "{h}"
    );
    assert!(h.contains(&format!(
        "<wsse:Password Type=\"{}\">QT5vWCWrxU1LS23bJAezR+7Chl4=</wsse:Password>",
        wsse::PASSWORD_DIGEST
    )));
    assert!(h.contains(">AAECAwQFBgcICQoLDA0ODw==</wsse:Nonce>"), "{h}");
    assert!(h.contains("<wsu:Created>2024-03-01T10:15:30.123Z</wsu:Created>"));
    assert!(!h.contains("P@ss"), "the password itself must not travel");
    assert!(h.contains("soap:mustUnderstand=\"1\""));
    // What a server reads back from it verifies against the password, and only that one.
    let token = UsernameToken {
        username: "hub&crm".into(),
        password_type: wsse::PASSWORD_DIGEST.into(),
        password: "QT5vWCWrxU1LS23bJAezR+7Chl4=".into(),
        nonce: "AAECAwQFBgcICQoLDA0ODw==".into(),
        created: "2024-03-01T10:15:30.123Z".into(),
    };
    assert!(token.verify("P@ss&word<1>"));
    assert!(!token.verify("P@ss&word<2>"));
    assert!(!format!("{token:?}").contains("QT5v"));
}

#[test]
fn text_header_and_fresh_nonces() {
    let h = wsse::security_header(&ws(PasswordType::Text), &[1, 2, 3], Utc::now()).unwrap();
    assert!(h.contains(&format!(
        "<wsse:Password Type=\"{}\">P@ss&amp;word&lt;1&gt;</wsse:Password>",
        wsse::PASSWORD_TEXT
    )));
    let a = wsse::fresh_nonce().unwrap();
    let b = wsse::fresh_nonce().unwrap();
    assert_ne!(a, b);
    assert!(!format!("{:?}", ws(PasswordType::Text)).contains("P@ss"));
}

// ---------- faults ----------

fn fault11(code: &str, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{NS11}\"><SOAP-ENV:Body>\
         <SOAP-ENV:Fault><faultcode>{code}</faultcode><faultstring xml:lang=\"en\">{text}</faultstring>\
         <detail><e:Info xmlns:e=\"urn:e\">passport 4510 123456</e:Info></detail>\
         </SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

fn fault12(code: &str, sub: Option<&str>, text: &str) -> String {
    let sub = sub
        .map(|s| format!("<env:Subcode><env:Value>{s}</env:Value></env:Subcode>"))
        .unwrap_or_default();
    format!(
        "<env:Envelope xmlns:env=\"{NS12}\" xmlns:b=\"urn:bank\"><env:Header/><env:Body><env:Fault>\
         <env:Code><env:Value>{code}</env:Value>{sub}</env:Code>\
         <env:Reason><env:Text xml:lang=\"ru\">{text}</env:Text><env:Text xml:lang=\"en\">other</env:Text></env:Reason>\
         </env:Fault></env:Body></env:Envelope>"
    )
}

#[test]
fn soap11_client_fault_is_permanent_server_fault_transient() {
    let f = parse_fault(fault11("SOAP-ENV:Client", "Invalid  since\n value").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.version, SoapVersion::V11);
    assert_eq!(f.code, "Client");
    assert_eq!(f.class, FaultClass::Sender);
    assert_eq!(f.reason, "Invalid since value");
    assert!(!f.is_transient());
    let shown = f.to_string();
    assert_eq!(
        shown,
        "soap 1.1 fault Client, permanent: Invalid since value"
    );
    assert!(!shown.contains("4510"), "detail must not be kept");

    let f = parse_fault(fault11("s:Server.Database", "db busy").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.code, "Server.Database");
    assert_eq!(f.class, FaultClass::Receiver);
    assert!(f.is_transient());

    let f = parse_fault(fault11("VersionMismatch", "").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.class, FaultClass::VersionMismatch);
    assert!(!f.is_transient());
    assert!(f.to_string().ends_with("(no fault string)"));

    let f = parse_fault(fault11("b:Weird", "x").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.class, FaultClass::Unknown);
    assert!(!f.is_transient(), "an unknown fault is not hammered");
}

#[test]
fn soap12_sender_fault_is_permanent_receiver_fault_transient() {
    let f = parse_fault(
        fault12(
            "env:Sender",
            Some("b:InvalidCredentials"),
            "Неверный пароль",
        )
        .as_bytes(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(f.version, SoapVersion::V12);
    assert_eq!(f.code, "Sender");
    assert_eq!(f.subcode.as_deref(), Some("InvalidCredentials"));
    assert_eq!(f.reason, "Неверный пароль");
    assert!(!f.is_transient());
    assert_eq!(
        f.to_string(),
        "soap 1.2 fault Sender (subcode InvalidCredentials), permanent: Неверный пароль"
    );

    let f = parse_fault(fault12("env:Receiver", None, "overloaded").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.class, FaultClass::Receiver);
    assert!(f.is_transient());

    let f = parse_fault(fault12("env:DataEncodingUnknown", None, "x").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.class, FaultClass::DataEncodingUnknown);
}

#[test]
fn fault_string_is_cleaned_and_cut() {
    let long = format!("{}\u{7}{}", "a".repeat(200), "b".repeat(200));
    let f = parse_fault(fault11("Server", &long).as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(f.reason.chars().count(), fault::MAX_REASON_CHARS + 1);
    assert!(f.reason.ends_with('…'));
    assert!(!f.reason.contains('\u{7}'));
}

#[test]
fn a_body_without_fault_or_a_fault_deeper_down_is_no_fault() {
    let ok = format!(
        "<s:Envelope xmlns:s=\"{NS11}\"><s:Body><R><Fault>not one</Fault></R></s:Body></s:Envelope>"
    );
    assert_eq!(parse_fault(ok.as_bytes()), Ok(None));
    let empty = format!("<s:Envelope xmlns:s=\"{NS11}\"><s:Body/></s:Envelope>");
    assert_eq!(parse_fault(empty.as_bytes()), Ok(None));
}

// ---------- records ----------

const CUSTOMERS_A: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="urn:bank:customers">
  <soapenv:Header><ns1:Trace>abc</ns1:Trace></soapenv:Header>
  <soapenv:Body>
    <ns1:GetCustomersChangedSinceResponse>
      <ns1:Page>1</ns1:Page>
      <ns1:Customers>
        <ns1:Customer id="C-1" status="active">
          <ns1:Name>Иванов Иван</ns1:Name>
          <ns1:Phone type="mobile">+79990000001</ns1:Phone>
          <ns1:Phone type="home">+74950000001</ns1:Phone>
          <ns1:Address><ns1:City>Москва</ns1:City><ns1:Zip xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></ns1:Address>
          <ns1:Note>AT&amp;T &#x410; <![CDATA[<raw>]]> end</ns1:Note>
          <ns1:Flag/>
          <ns1:Mixed>head <ns1:B>bold</ns1:B> tail</ns1:Mixed>
        </ns1:Customer>
        <ns1:Other><ns1:Customer id="not-a-record"/></ns1:Other>
        <ns1:Customer id="C-2"><ns1:Name>Петрова</ns1:Name></ns1:Customer>
      </ns1:Customers>
    </ns1:GetCustomersChangedSinceResponse>
  </soapenv:Body>
</soapenv:Envelope>"#;

#[test]
fn records_at_a_path_with_nested_and_repeated_elements() {
    let (records, err) = read_all(
        CUSTOMERS_A,
        "GetCustomersChangedSinceResponse/Customers/Customer",
    );
    assert_eq!(err, None);
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(
        records[0],
        json!({
            "@id": "C-1",
            "@status": "active",
            "Name": "Иванов Иван",
            "Phone": [
                {"@type": "mobile", "#text": "+79990000001"},
                {"@type": "home", "#text": "+74950000001"}
            ],
            "Address": {"City": "Москва", "Zip": null},
            "Note": "AT&T А <raw> end",
            "Flag": "",
            "Mixed": {"B": "bold", "#text": "head  tail"}
        })
    );
    assert_eq!(records[1], json!({"@id": "C-2", "Name": "Петрова"}));
}

#[test]
fn prefixes_differ_between_answers_local_names_match() {
    // The same answer with a default namespace and a SOAP 1.2 envelope with another prefix.
    let b = format!(
        r#"<e:Envelope xmlns:e="{NS12}"><e:Body>
        <GetCustomersChangedSinceResponse xmlns="urn:bank:customers"><Customers>
        <Customer id="C-1"><Name>Иванов Иван</Name></Customer>
        <x:Customer xmlns:x="urn:other" id="C-9"/>
        </Customers></GetCustomersChangedSinceResponse></e:Body></e:Envelope>"#
    );
    let (records, err) = read_all(&b, "GetCustomersChangedSinceResponse/Customers/Customer");
    assert_eq!(err, None);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Name"], "Иванов Иван");
    assert_eq!(records[1], json!({"@id": "C-9"}));
}

#[test]
fn record_positions_are_reported() {
    let reader = RecordReader::new(
        CUSTOMERS_A.as_bytes(),
        "/GetCustomersChangedSinceResponse/Customers/Customer/",
        Some(SoapVersion::V11),
        MB,
    )
    .unwrap();
    assert_eq!(
        reader.record_path(),
        "GetCustomersChangedSinceResponse/Customers/Customer"
    );
    let recs: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(recs[0].index, 0);
    assert_eq!(recs[1].index, 1);
    assert_eq!(recs[0].line, 8);
    let at = recs[0].offset as usize;
    assert!(CUSTOMERS_A[at..].starts_with("<ns1:Customer id=\"C-1\""));
    assert!(CUSTOMERS_A[recs[1].offset as usize..].starts_with("<ns1:Customer id=\"C-2\""));
}

/// An answer in the shape of the Bank of Russia's DailyInfo `GetCursOnDateXML`, both
/// bindings: the result's `ValuteData` resets the default namespace.
fn daily_info(version: SoapVersion) -> String {
    let (p, ns) = match version {
        SoapVersion::V11 => ("soap", NS11),
        SoapVersion::V12 => ("soap12", NS12),
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><{p}:Envelope xmlns:{p}="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><{p}:Body><GetCursOnDateXMLResponse xmlns="http://web.cbr.ru/"><GetCursOnDateXMLResult><ValuteData OnDate="20240301" xmlns=""><ValuteCursOnDate><Vname>Доллар США                                           </Vname><Vnom>1</Vnom><Vcurs>91.3336</Vcurs><Vcode>840</Vcode><VchCode>USD</VchCode><VunitRate>91.3336</VunitRate></ValuteCursOnDate><ValuteCursOnDate><Vname>Евро</Vname><Vnom>1</Vnom><Vcurs>98.9780</Vcurs><Vcode>978</Vcode><VchCode>EUR</VchCode><VunitRate>98.978</VunitRate></ValuteCursOnDate><ValuteCursOnDate><Vname>Японских иен</Vname><Vnom>100</Vnom><Vcurs>60.9205</Vcurs><Vcode>392</Vcode><VchCode>JPY</VchCode><VunitRate>0.609205</VunitRate></ValuteCursOnDate></ValuteData></GetCursOnDateXMLResult></GetCursOnDateXMLResponse></{p}:Body></{p}:Envelope>"#
    )
}

#[test]
fn daily_info_rates_in_both_bindings() {
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let xml = daily_info(version);
        let reader = RecordReader::new(
            xml.as_bytes(),
            "GetCursOnDateXMLResponse/GetCursOnDateXMLResult/ValuteData/ValuteCursOnDate",
            Some(version),
            MB,
        )
        .unwrap();
        let rates: Vec<_> = reader.map(|r| r.unwrap().value).collect();
        assert_eq!(rates.len(), 3, "{version}");
        assert_eq!(rates[0]["Vname"], "Доллар США", "trailing padding trimmed");
        assert_eq!(rates[0]["VchCode"], "USD");
        assert_eq!(rates[2]["Vnom"], "100");
        assert_eq!(rates[2]["VunitRate"], "0.609205");
        // The other binding is refused when a version is configured.
        let other = match version {
            SoapVersion::V11 => SoapVersion::V12,
            SoapVersion::V12 => SoapVersion::V11,
        };
        let mut r =
            RecordReader::new(xml.as_bytes(), "GetCursOnDateXMLResponse", Some(other), MB).unwrap();
        match r.next() {
            Some(Err(ReadError::Parse(p))) => {
                assert!(
                    p.reason.contains(&format!("soap {version} envelope")),
                    "{p}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_fault_ends_the_records() {
    let (records, err) = read_all(&fault11("Server", "down"), "R/Customer");
    assert!(records.is_empty());
    match err {
        Some(ReadError::Fault(f)) => assert!(f.is_transient()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn xml_to_json_rules() {
    let v = element_to_json(
        br#"<c:Customer xmlns:c="urn:c" c:id="7"><c:Tag>a</c:Tag><c:Tag>b</c:Tag><c:Tag>c</c:Tag><c:Empty></c:Empty>  <c:Sp>  two  words </c:Sp></c:Customer>"#,
        MB,
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"@id": "7", "Tag": ["a", "b", "c"], "Empty": "", "Sp": "two  words"})
    );
    assert_eq!(element_to_json(b"<a>x</a>", MB).unwrap(), json!("x"));
    assert_eq!(
        element_to_json(b"<a k=\"1 &amp; 2\"/>", MB).unwrap(),
        json!({"@k": "1 & 2"})
    );
    let e = element_to_json(b"<a><b></a>", MB).unwrap_err();
    assert!(e.reason.contains("malformed"), "{e}");
    let e = element_to_json(b"<a>&nope;</a>", MB).unwrap_err();
    assert!(e.reason.contains("unknown entity"), "{e}");
}

#[test]
fn value_at_follows_keys() {
    let v = json!({"Meta": {"ChangedAt": "2024-01-01"}, "@seq": "5"});
    let p = |s: &str| config::split_path(s).unwrap();
    assert_eq!(
        xml_json::value_at(&v, &p("Meta/ChangedAt")),
        Some(&json!("2024-01-01"))
    );
    assert_eq!(xml_json::value_at(&v, &p("@seq")), Some(&json!("5")));
    assert_eq!(xml_json::value_at(&v, &p("Meta/Nope")), None);
}

// ---------- malformed answers ----------

#[test]
fn malformed_xml_names_the_element_path_and_offset() {
    let xml = format!(
        "<s:Envelope xmlns:s=\"{NS11}\"><s:Body><R><Customer><Name>x</Nme></Customer></R></s:Body></s:Envelope>"
    );
    let e = parse_err(&xml, "R/Customer");
    assert!(e.reason.starts_with("malformed xml"), "{e}");
    assert_eq!(e.path, "Envelope/Body/R/Customer/Name");
    assert_eq!(e.offset as usize, xml.find("</Nme>").unwrap());
    assert!(
        e.to_string().contains("in Envelope/Body/R/Customer/Name"),
        "{e}"
    );

    let cut = &xml[..xml.find("</Customer>").unwrap()];
    let e = parse_err(cut, "R/Customer");
    assert!(
        e.reason.contains("cut short") || e.reason.contains("malformed"),
        "{e}"
    );
}

#[test]
fn answers_that_are_not_soap_are_refused() {
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "no element"),
        (
            "<html><body>502 Bad Gateway</body></html>".into(),
            "root element is `html`",
        ),
        ("<Envelope><Body/></Envelope>".into(), "not declared"),
        (
            "<s:Envelope xmlns:s=\"urn:nope\"><s:Body/></s:Envelope>".into(),
            "neither soap 1.1",
        ),
        (
            format!("<s:Envelope xmlns:s=\"{NS11}\"><s:Header/></s:Envelope>"),
            "no Body",
        ),
        (
            format!(
                "<!DOCTYPE x [<!ENTITY e \"boom\">]><s:Envelope xmlns:s=\"{NS11}\"><s:Body/></s:Envelope>"
            ),
            "DTD",
        ),
        (
            format!(
                "<?xml version=\"1.0\" encoding=\"windows-1251\"?><s:Envelope xmlns:s=\"{NS11}\"><s:Body/></s:Envelope>"
            ),
            "only utf-8",
        ),
        (
            format!(
                "<s:Envelope xmlns:s=\"{NS11}\"><s:Body><R><Customer>&ent;</Customer></R></s:Body></s:Envelope>"
            ),
            "unknown entity",
        ),
        (
            format!(
                "<s:Envelope xmlns:s=\"{NS11}\"><s:Body/></s:Envelope><s:Envelope xmlns:s=\"{NS11}\"/>"
            ),
            "second root",
        ),
    ];
    for (xml, needle) in cases {
        let e = parse_err(&xml, "R/Customer");
        assert!(e.to_string().contains(needle), "{xml}: {e}");
    }
}

#[test]
fn oversized_records_and_deep_nesting_are_errors_not_memory() {
    let big = format!(
        "<s:Envelope xmlns:s=\"{NS11}\"><s:Body><R><Customer><N>{}</N></Customer></R></s:Body></s:Envelope>",
        "x".repeat(10_000)
    );
    let mut r = RecordReader::new(big.as_bytes(), "R/Customer", None, 4096).unwrap();
    match r.next() {
        Some(Err(ReadError::Parse(p))) => assert!(p.reason.contains("larger than 4096"), "{p}"),
        other => panic!("{other:?}"),
    }
    assert!(r.next().is_none(), "reading ends after the error");

    let deep = format!(
        "<s:Envelope xmlns:s=\"{NS11}\"><s:Body>{}{}</s:Body></s:Envelope>",
        "<a>".repeat(500),
        "</a>".repeat(500)
    );
    let e = parse_err(&deep, "a/a");
    let e2 = match read_all(&deep, "x").1 {
        Some(ReadError::Parse(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(e2.reason.contains("nest deeper"), "{e2}");
    assert!(
        e.reason.contains("nest deeper") || e.reason.contains("larger"),
        "{e}"
    );
}

/// A small PRNG so the mutation test is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Deletes, duplicates, flips and splices bytes of `seed`.
fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"<",
        b">",
        b"</",
        b"/>",
        b"&",
        b"&amp;",
        b"&#x0;",
        b"&#xD800;",
        b"<![CDATA[",
        b"]]>",
        b"<!DOCTYPE",
        b"\"",
        b"xmlns:s=\"x\"",
        b"Fault",
        b"Body",
        b"<Fault>",
        b"\xff\xfe",
        b"\0",
    ];
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let end = (at + rng.below(32)).min(v.len());
                v.drain(at.min(end)..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 if at < v.len() => v[at] = rng.next() as u8,
            3 if !v.is_empty() => {
                let from = rng.below(v.len());
                let end = (from + rng.below(64)).min(v.len());
                let piece = v[from..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn thousands_of_mutated_envelopes_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        CUSTOMERS_A.as_bytes().to_vec(),
        daily_info(SoapVersion::V11).into_bytes(),
        daily_info(SoapVersion::V12).into_bytes(),
        fault11("SOAP-ENV:Client", "bad").into_bytes(),
        fault12("env:Receiver", Some("b:Busy"), "later").into_bytes(),
    ];
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let (mut records, mut faults, mut errors, mut round_trips) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..5_000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        for path in [
            "GetCustomersChangedSinceResponse/Customers/Customer",
            "GetCursOnDateXMLResponse/GetCursOnDateXMLResult/ValuteData/ValuteCursOnDate",
        ] {
            let reader = RecordReader::new(input.as_slice(), path, None, 64 * 1024).unwrap();
            for item in reader.take(100) {
                match item {
                    Ok(_) => records += 1,
                    Err(ReadError::Fault(_)) => faults += 1,
                    Err(ReadError::Parse(p)) => {
                        assert!(
                            p.offset <= input.len() as u64 + 1,
                            "offset out of range: {p}"
                        );
                        errors += 1;
                    }
                }
            }
        }
        let _ = parse_fault(&input);
        let _ = element_to_json(&input, 64 * 1024);
        // Round trip: any text escaped into an element reads back the same (line ends
        // normalised, trimmed), so a cursor or a template value survives the trip.
        if let Ok(text) = std::str::from_utf8(&input)
            && let Some(escaped) = xml_escape(text)
        {
            let v = element_to_json(format!("<a>{escaped}</a>").as_bytes(), MB).unwrap();
            let expected = text.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(v.as_str(), Some(expected.trim()), "round trip of input {i}");
            round_trips += 1;
        }
    }
    // The mutations leave some inputs intact and break others: both paths were exercised.
    assert!(
        records > 500 && faults > 100 && errors > 1000 && round_trips > 1000,
        "{records} {faults} {errors} {round_trips}"
    );
}

// ---------- config ----------

const EXAMPLE: &str = r#"
endpoint = "https://abs.bank.local/ws/customers"
version = "1.2"
poll_interval_ms = 30000

[ws_security]
username = "hub"
password = "env:ABS_SOAP_PASSWORD"
password_type = "digest"

[tls]
ca_bundle = "/etc/hub/bank-ca.pem"

[[operations]]
name = "customers"
soap_action = "urn:bank:GetCustomersChangedSince"
request_template = """
<b:GetCustomersChangedSince xmlns:b="urn:bank:customers">
  <b:Since>{{cursor}}</b:Since><b:Page>{{page}}</b:Page>
</b:GetCustomersChangedSince>"""
record_path = "GetCustomersChangedSinceResponse/Customers/Customer"
cursor_field = "ChangedAt"
initial_cursor = "1970-01-01T00:00:00Z"
paged = true
"#;

#[test]
fn the_example_config_parses_and_validates() {
    let cfg: SoapConfig = toml::from_str(EXAMPLE).unwrap();
    assert_eq!(cfg.version, SoapVersion::V12);
    assert_eq!(cfg.operations.len(), 1);
    assert!(cfg.operations[0].paged);
    assert_eq!(cfg.operations[0].first_page, 1);
    assert_eq!(
        cfg.ws_security.as_ref().unwrap().password_type,
        PasswordType::Digest
    );
    assert_eq!(cfg.max_attempts, 5);
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    assert!(!format!("{cfg:?}").contains("ABS_SOAP_PASSWORD"));
}

#[test]
fn config_problems_name_their_field() {
    let mut cfg: SoapConfig = toml::from_str(EXAMPLE).unwrap();
    cfg.endpoint = "ftp://x".into();
    cfg.operations[0].request_template = "<a>{{cursor}}</a>".into();
    cfg.operations[0].record_path = "a//b".into();
    cfg.operations.push(cfg.operations[0].clone());
    cfg.tls.client_cert = Some("c.pem".into());
    cfg.max_attempts = 0;
    let fields: Vec<String> = cfg.problems().into_iter().map(|(f, _)| f).collect();
    for f in [
        "endpoint",
        "operations[0].request_template",
        "operations[0].record_path",
        "operations[1].name",
        "tls",
        "max_attempts",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
    let unknown = toml::from_str::<SoapConfig>(&format!("{EXAMPLE}\ncolour = 1\n"));
    assert!(unknown.is_err());
    assert!(toml::from_str::<SoapConfig>(&EXAMPLE.replace("\"1.2\"", "\"1.3\"")).is_err());
}

// ---------- client against a scripted server ----------

#[derive(Debug, Clone)]
enum Reply {
    Status(u16, String, Option<u64>),
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Seen {
    content_type: String,
    soap_action: Option<String>,
    body: String,
}

/// Replies still to give, requests seen, the answer once the replies are used up.
type ScriptState = (VecDeque<Reply>, Vec<Seen>, String);

#[derive(Clone, Default)]
struct Script(Arc<Mutex<ScriptState>>);

impl Script {
    fn new(default_ok: String, replies: impl IntoIterator<Item = Reply>) -> Script {
        Script(Arc::new(Mutex::new((
            replies.into_iter().collect(),
            Vec::new(),
            default_ok,
        ))))
    }
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().1.clone()
    }
}

async fn handle(State(script): State<Script>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let (reply, default) = {
        let mut s = script.0.lock().unwrap();
        s.1.push(Seen {
            content_type: h("content-type").unwrap_or_default(),
            soap_action: h("soapaction"),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (s.0.pop_front(), s.2.clone())
    };
    match reply {
        None => (StatusCode::OK, [("content-type", "text/xml")], default).into_response(),
        Some(Reply::Status(code, b, retry)) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), b).into_response();
            if let Some(s) = retry {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Some(Reply::Delay(d)) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, default).into_response()
        }
    }
}

async fn serve(script: Script) -> SocketAddr {
    let app = Router::new().route("/ws", post(handle)).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn client_config(addr: SocketAddr, version: SoapVersion) -> SoapConfig {
    let mut cfg: SoapConfig = toml::from_str(EXAMPLE).unwrap();
    cfg.endpoint = format!("http://{addr}/ws");
    cfg.version = version;
    cfg.tls = Default::default();
    cfg.ws_security = Some(WsSecurityConfig {
        username: "hub".into(),
        password: "s3cret".into(),
        password_type: PasswordType::Digest,
    });
    cfg.max_attempts = 4;
    cfg.initial_backoff_ms = 10;
    cfg.max_backoff_ms = 50;
    cfg.timeout_ms = 2_000;
    cfg
}

fn customers_page(version: SoapVersion, n: usize) -> String {
    let ns = version.namespace();
    let mut s = format!(
        "<s:Envelope xmlns:s=\"{ns}\"><s:Body><r:GetCustomersChangedSinceResponse xmlns:r=\"urn:bank:customers\"><r:Customers>"
    );
    for i in 0..n {
        s.push_str(&format!(
            "<r:Customer><r:Id>C-{i}</r:Id><r:ChangedAt>2024-01-01T00:00:{:02}Z</r:ChangedAt></r:Customer>",
            i % 60
        ));
    }
    s.push_str("</r:Customers></r:GetCustomersChangedSinceResponse></s:Body></s:Envelope>");
    s
}

fn token_of(body: &str) -> UsernameToken {
    let grab = |open: &str, close: &str| -> String {
        let start = body.find(open).map(|i| i + open.len()).unwrap_or(0);
        let rest = &body[start..];
        let start = rest.find('>').map(|i| i + 1).unwrap_or(0);
        let end = rest.find(close).unwrap_or(rest.len());
        rest[start..end].to_owned()
    };
    let type_start = body.find("Password Type=\"").unwrap() + "Password Type=\"".len();
    let type_end = type_start + body[type_start..].find('"').unwrap();
    UsernameToken {
        username: grab("<wsse:Username", "</wsse:Username>"),
        password_type: body[type_start..type_end].to_owned(),
        password: grab("<wsse:Password", "</wsse:Password>"),
        nonce: grab("<wsse:Nonce", "</wsse:Nonce>"),
        created: grab("<wsu:Created", "</wsu:Created>"),
    }
}

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn soap11_call_sends_action_and_a_verifiable_digest() {
    install_provider();
    let script = Script::new(customers_page(SoapVersion::V11, 3), []);
    let addr = serve(script.clone()).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V11)).unwrap();
    let (answer, attempts) = client
        .call("customers", &vars("2024-01-01T00:00:00Z", 2))
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(answer.status, 200);
    let seen = script.seen();
    assert_eq!(seen[0].content_type, "text/xml; charset=utf-8");
    assert_eq!(
        seen[0].soap_action.as_deref(),
        Some("\"urn:bank:GetCustomersChangedSince\"")
    );
    assert!(
        seen[0]
            .body
            .contains("<b:Since>2024-01-01T00:00:00Z</b:Since><b:Page>2</b:Page>")
    );
    assert!(seen[0].body.contains(NS11));
    let token = token_of(&seen[0].body);
    assert!(token.is_digest());
    assert!(token.verify("s3cret"), "{token:?}");
    let ids: Vec<String> = tokio::task::spawn_blocking(move || {
        answer
            .records()
            .unwrap()
            .map(|r| r.unwrap().value["Id"].as_str().unwrap().to_owned())
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(ids, ["C-0", "C-1", "C-2"]);
}

#[tokio::test]
async fn soap12_call_puts_the_action_in_the_content_type() {
    install_provider();
    let script = Script::new(customers_page(SoapVersion::V12, 1), []);
    let addr = serve(script.clone()).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V12)).unwrap();
    client.call("customers", &vars("", 1)).await.unwrap();
    let seen = script.seen();
    assert_eq!(
        seen[0].content_type,
        "application/soap+xml; charset=utf-8; action=\"urn:bank:GetCustomersChangedSince\""
    );
    assert_eq!(seen[0].soap_action, None);
    assert!(seen[0].body.contains(NS12));
}

#[tokio::test]
async fn server_faults_are_retried_with_fresh_nonces() {
    install_provider();
    let f = fault11("soap:Server", "database is busy");
    let script = Script::new(
        customers_page(SoapVersion::V11, 2),
        [
            Reply::Status(500, f.clone(), None),
            Reply::Status(503, "Service Unavailable".into(), Some(0)),
            Reply::Status(500, f, None),
        ],
    );
    let addr = serve(script.clone()).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V11)).unwrap();
    let (_, attempts) = client.call("customers", &vars("", 1)).await.unwrap();
    assert_eq!(attempts, 4);
    let nonces: std::collections::BTreeSet<String> = script
        .seen()
        .iter()
        .map(|s| token_of(&s.body).nonce)
        .collect();
    assert_eq!(nonces.len(), 4, "every attempt carries its own nonce");
}

#[tokio::test]
async fn a_client_fault_is_not_retried_and_http_500_with_a_fault_is_a_fault() {
    install_provider();
    let script = Script::new(
        String::new(),
        [Reply::Status(
            500,
            fault12("env:Sender", Some("b:BadSince"), "since is in the future"),
            None,
        )],
    );
    let addr = serve(script.clone()).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V12)).unwrap();
    let err = client.call("customers", &vars("", 1)).await.unwrap_err();
    assert_eq!(script.seen().len(), 1, "a permanent fault is not retried");
    assert!(!err.is_transient());
    let fault = err.fault().expect("a fault, not a generic 500");
    assert_eq!(fault.code, "Sender");
    assert_eq!(err.status(), Some(500));
    let text = err.to_string();
    assert!(
        text.contains("operation customers") && text.contains("since is in the future"),
        "{text}"
    );
}

#[tokio::test]
async fn a_500_without_a_fault_is_a_status_error_and_gives_up_after_max_attempts() {
    install_provider();
    let page = "<html>oops</html>".to_owned();
    let script = Script::new(
        String::new(),
        (0..10).map(|_| Reply::Status(500, page.clone(), None)),
    );
    let addr = serve(script.clone()).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V11)).unwrap();
    let err = client.call("customers", &vars("", 1)).await.unwrap_err();
    assert!(
        matches!(err, SoapError::Attempts { attempts: 4, .. }),
        "{err}"
    );
    assert!(matches!(err.last(), SoapError::Status { status: 500, .. }));
    assert!(err.fault().is_none());
}

#[tokio::test]
async fn timeouts_are_transient_and_retried() {
    install_provider();
    let script = Script::new(
        customers_page(SoapVersion::V11, 1),
        [Reply::Delay(Duration::from_millis(800))],
    );
    let addr = serve(script.clone()).await;
    let mut cfg = client_config(addr, SoapVersion::V11);
    cfg.timeout_ms = 300;
    let client = SoapClient::new(cfg).unwrap();
    let (_, attempts) = client.call("customers", &vars("", 1)).await.unwrap();
    assert_eq!(attempts, 2);
    let once = SoapClient::new({
        let mut c = client_config(addr, SoapVersion::V11);
        c.timeout_ms = 300;
        c
    })
    .unwrap();
    script
        .0
        .lock()
        .unwrap()
        .0
        .push_back(Reply::Delay(Duration::from_millis(800)));
    let err = once.call_once("customers", &vars("", 1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            SoapError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() {
    install_provider();
    let script = Script::new(customers_page(SoapVersion::V11, 500), []);
    let addr = serve(script).await;
    let mut cfg = client_config(addr, SoapVersion::V11);
    cfg.max_response_bytes = 10_000;
    let client = SoapClient::new(cfg).unwrap();
    let err = client.call("customers", &vars("", 1)).await.unwrap_err();
    assert!(
        matches!(err.last(), SoapError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_wrong_version_or_html_200_is_a_bad_response() {
    install_provider();
    let script = Script::new(customers_page(SoapVersion::V12, 1), []);
    let addr = serve(script).await;
    let client = SoapClient::new(client_config(addr, SoapVersion::V11)).unwrap();
    let err = client
        .call_once("customers", &vars("", 1))
        .await
        .unwrap_err();
    match err {
        SoapError::BadResponse { error, .. } => {
            assert!(
                error
                    .reason
                    .contains("soap 1.2 envelope, soap 1.1 is configured"),
                "{error}"
            )
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn tls_files_that_cannot_be_read_are_named() {
    install_provider();
    let mut cfg = client_config("127.0.0.1:1".parse().unwrap(), SoapVersion::V11);
    cfg.tls.ca_bundle = Some("/nonexistent/ca.pem".into());
    let err = SoapClient::new(cfg).unwrap_err();
    assert!(
        err.to_string()
            .contains("tls.ca_bundle: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut cfg = client_config("127.0.0.1:1".parse().unwrap(), SoapVersion::V11);
    cfg.tls.ca_bundle = Some(bad);
    let err = SoapClient::new(cfg).unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn a_large_answer_streams_through_a_spool_file() {
    install_provider();
    // About 6 MB, 60,000 records: read back one at a time from the spool file.
    let n = 60_000;
    let script = Script::new(customers_page(SoapVersion::V11, n), []);
    let addr = serve(script).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = client_config(addr, SoapVersion::V11);
    cfg.spool_dir = Some(dir.path().join("spool"));
    cfg.timeout_ms = 30_000;
    let client = SoapClient::new(cfg).unwrap();
    let (answer, _) = client.call("customers", &vars("", 1)).await.unwrap();
    assert!(answer.len > 5_000_000);
    // The spool file is anonymous: nothing is left in the folder.
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
    let count = tokio::task::spawn_blocking(move || {
        let mut count = 0usize;
        for r in answer.records().unwrap() {
            let r = r.unwrap();
            assert_eq!(r.index as usize, count);
            count += 1;
        }
        count
    })
    .await
    .unwrap();
    assert_eq!(count, n);
}

#[test]
fn fault_from_value_accepts_either_shape() {
    let f = SoapFault::from_value(
        SoapVersion::V12,
        &json!({"faultcode": "Server", "faultstring": {"@lang": "en", "#text": "x"}}),
    );
    assert!(f.is_transient());
    assert_eq!(f.reason, "x");
    let f = SoapFault::from_value(SoapVersion::V11, &json!({}));
    assert_eq!(f.class, FaultClass::Unknown);
}
