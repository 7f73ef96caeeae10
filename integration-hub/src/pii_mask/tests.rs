use super::*;

fn m(s: &str) -> String {
    mask(s).into_owned()
}

// ------------------------------------------------------------- what is masked ----

#[test]
fn emails_are_masked() {
    assert_eq!(
        m("bad address ivan.petrov+crm@example.co.uk here"),
        "bad address [email] here"
    );
    assert_eq!(m(r#"{"error":"a@b.ru"}"#), r#"{"error":"[email]"}"#);
    assert_eq!(m("two: x@y.com, z_1@mail.ru."), "two: [email], [email].");
}

#[test]
fn russian_and_international_phones_are_masked() {
    for p in [
        "+7 (912) 345-67-89",
        "+79123456789",
        "8 912 345 67 89",
        "89123456789",
        "8-912-345-67-89",
        "9123456789",
        "+44 20 7946 0958",
        "+1-202-555-0143",
    ] {
        assert_eq!(m(&format!("call {p} now")), "call [phone] now", "{p}");
    }
}

#[test]
fn national_ids_with_check_digits_are_masked() {
    assert_eq!(m("inn 7707083893 ok"), "inn [inn] ok");
    assert_eq!(m("person 500100732259."), "person [inn].");
    assert_eq!(m("snils 112-233-445 95;"), "snils [snils];");
    assert_eq!(m("snils 11223344595"), "snils [snils]");
    assert_eq!(m("passport 4509 123456"), "passport [passport]");
    assert_eq!(m("passport 45 09 123456"), "passport [passport]");
    // A CRM's error code naming the value.
    assert_eq!(
        m("crm answered 422 (duplicate_inn_500100732259) for envelope 9f86d081"),
        "crm answered 422 (duplicate_inn_[inn]) for envelope 9f86d081"
    );
    assert_eq!(m("invalid_phone_89161112233_x"), "invalid_phone_[phone]_x");
}

#[test]
fn card_numbers_passing_luhn_are_masked_with_any_grouping() {
    for p in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "2202200003141597",
    ] {
        let digits: Vec<u8> = p
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        if !detect::pan(&digits) {
            continue;
        }
        assert_eq!(
            m(&format!("card {p} declined")),
            "card [pan] declined",
            "{p}"
        );
    }
    assert_eq!(m("card 4111 1111 1111 1111"), "card [pan]");
}

#[test]
fn values_next_to_personal_keys_are_masked_whatever_their_shape() {
    // Invalid values are the classic leak: an error echoing what failed validation.
    assert_eq!(
        m(r#"{"inn":"770708389X","x":1}"#),
        r#"{"inn":"[inn]","x":1}"#
    );
    assert_eq!(m("email=not-an-address, row 3"), "email=[email], row 3");
    assert_eq!(m("phone: 12-34 rejected"), "phone: [phone] rejected");
    assert_eq!(
        m(
            r#"{"message":"crm said {\"LastName\":\"Smith\",\"Email\":\"broken@\",\"MobilePhone\":\"+7 9\"}"}"#
        ),
        r#"{"message":"crm said {\"LastName\":\"[name]\",\"Email\":\"[email]\",\"MobilePhone\":\"[phone]\"}"}"#
    );
    assert_eq!(m("FirstName=John Smith; ok"), "FirstName=[name]; ok");
    assert_eq!(m("emailaddress1: a.b"), "emailaddress1: [email]");
    assert_eq!(m(r#"{"email":"nothing"}"#), r#"{"email":"[email]"}"#);
    assert_eq!(
        m("<passport>4509 12345</passport> passport=4509 12345"),
        "<passport>4509 12345</passport> passport=[passport]"
    );
}

#[test]
fn cyrillic_names_of_two_or_three_words_are_masked() {
    assert_eq!(m("hit: Иванов Иван Иванович (0.97)"), "hit: [name] (0.97)");
    assert_eq!(m(r#"{"entry":"Петрова Анна"}"#), r#"{"entry":"[name]"}"#);
    assert_eq!(m("Римская-Корсакова Мария"), "[name]");
    assert_eq!(m("Иванов Иван Иванович Петров Пётр"), "[name] [name]");
}

// ------------------------------------------------------------ false positives ----

#[test]
fn ids_times_and_counts_are_left_alone() {
    for line in [
        r#"{"timestamp":"2026-11-26T01:13:25.123456Z","level":"INFO","event":"delivered","envelope_id":"9f86d081884c7d659a2feaa0c55ad015","source":"abs","key":"C-100","golden_id":"G0000000042","count":12,"elapsed_ms":35}"#,
        "2026-11-26T01:13:25.123456Z  INFO integration_hub::pipeline: delivered envelope_id=12345678901234567890123456789012 key=C-100",
        r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}"#,
        r#"{"envelope_id":"4111111111111111ab00000000000000"}"#,
        "golden G0000000001 merged into G0000000002",
        "source key C-89123456789 and K-4111111111111111 kept",
        "file customers_2026-11-25.csv: 1200 rows, 3 quarantined, offset 1234567, partition 3",
        "listening on 127.0.0.1:9092 and 0.0.0.0:8080, version 0.1.0, took 12.5 ms",
        "batch of 500 in 1764119605 s; lag 0",
        r#"{"name":"crm-main","sink":"crm","field":"phone","reason":"not a valid phone"}"#,
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "quarantine line 17; field inn; checksum mismatch",
        "row 2026-11-25 10:00 processed",
        "postgres://hub@127.0.0.1:55432/hub_test",
        "Error Reading Config",
        "[phone] [inn] [email] already masked",
        "reason: emails: must be a valid e-mail address: domain has no dot; phones: must have 8 to 15 digits after '+', got 6",
    ] {
        assert_eq!(m(line), line, "changed: {line}");
        assert!(matches!(mask(line), Cow::Borrowed(_)) || m(line) == line);
    }
}

#[test]
fn a_single_cyrillic_word_and_lower_case_text_stay() {
    for line in ["ошибка разбора", "Ошибка разбора файла", "клиент Иванов"]
    {
        assert_eq!(m(line), line);
    }
}

// --------------------------------------------------------------------- writer ----

#[derive(Clone, Default)]
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, d: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(d);
        Ok(d.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_writer_masks_a_line_written_in_pieces() {
    let sink = Sink::default();
    let out = sink.clone();
    let make = MaskingMakeWriter::new(move || sink.clone());
    {
        let mut w = make.make_writer();
        w.write_all(b"rejected ivan@exa").unwrap();
        w.flush().unwrap();
        w.write_all(b"mple.com and 8912").unwrap();
        w.write_all(b"3456789\n").unwrap();
    }
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text, "rejected [email] and [phone]\n");
}

#[test]
fn the_subscriber_output_is_masked() {
    let sink = Sink::default();
    let out = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(MaskingMakeWriter::new(move || sink.clone()))
        .json()
        .flatten_event(true)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(
            event = "crm_rejected",
            key = "C-7",
            error = "dup of Сидоров Пётр, inn 7707083893",
            "rejected"
        );
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("dup of [name], inn [inn]"), "{text}");
    assert!(text.contains("\"key\":\"C-7\""), "{text}");
    assert!(
        serde_json::from_str::<serde_json::Value>(text.trim()).is_ok(),
        "{text}"
    );
}
