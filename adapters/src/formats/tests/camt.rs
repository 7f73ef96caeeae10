use chrono::NaiveDate;
use mapping::Direction;

use super::{balances, entities, read, transactions};
use crate::formats::camt::CamtConfig;
use crate::formats::{ErrorScope, FormatConfig, Record};

pub(super) fn camt() -> FormatConfig {
    FormatConfig::Camt(CamtConfig::default())
}

/// A camt.053 in the version 8 shape (`Sts/Cd`, `Dbtr/Pty/Nm`, `BICFI`).
pub(super) const STMT_V8: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2024-03-01T08:00:00+03:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-2024-03-01</Id>
      <ElctrncSeqNb>61</ElctrncSeqNb>
      <CreDtTm>2024-03-01T08:00:00+03:00</CreDtTm>
      <FrToDt><FrDtTm>2024-02-29T00:00:00+03:00</FrDtTm><ToDtTm>2024-02-29T23:59:59+03:00</ToDtTm></FrToDt>
      <Acct>
        <Id><IBAN>DE02100100100006820101</IBAN></Id>
        <Ccy>EUR</Ccy>
        <Ownr><Nm>Lindenhof Handels GmbH</Nm></Ownr>
        <Svcr><FinInstnId><BICFI>TESTDEFFXXX</BICFI></FinInstnId></Svcr>
      </Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-02-29</Dt></Dt>
      </Bal>
      <Ntry>
        <Amt Ccy="EUR">250.50</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><DtTm>2024-02-29T10:15:00+01:00</DtTm></BookgDt>
        <ValDt><Dt>2024-02-29</Dt></ValDt>
        <AcctSvcrRef>BANKREF-1</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>E2E-0001</EndToEndId></Refs>
          <Amt Ccy="EUR">250.50</Amt>
          <RltdPties>
            <Dbtr><Pty><Nm>Kaffeer&#246;sterei M&amp;M</Nm><PstlAdr><Ctry>AT</Ctry></PstlAdr></Pty></Dbtr>
            <DbtrAcct><Id><IBAN>AT611904300234573201</IBAN></Id></DbtrAcct>
            <Cdtr><Pty><Nm>Lindenhof Handels GmbH</Nm></Pty></Cdtr>
          </RltdPties>
          <RltdAgts><DbtrAgt><FinInstnId><BICFI>TESTATWWXXX</BICFI></FinInstnId></DbtrAgt></RltdAgts>
          <RmtInf><Ustrd>Invoice 2024-117</Ustrd><Ustrd>second line</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">80.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2024-02-29</Dt></BookgDt>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <Amt Ccy="EUR">30.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>
            <RltdPties><Cdtr><Pty><Nm>Stadtwerke Nord</Nm></Pty></Cdtr></RltdPties>
            <RmtInf><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf>
          </TxDtls>
          <TxDtls>
            <Amt Ccy="EUR">50.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>
            <RltdPties><Cdtr><Pty><Nm>Versicherung Ost</Nm></Pty></Cdtr>
              <CdtrAcct><Id><Othr><Id>ACC-77</Id></Othr></Id></CdtrAcct></RltdPties>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">1170.50</Amt><CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-02-29</Dt></Dt>
      </Bal>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"#;

#[test]
fn camt053_v8_statement_balances_and_transactions() {
    let (items, errors) = read(&camt(), STMT_V8.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        entities(&items),
        [
            "account",
            "statement",
            "balance",
            "transaction",
            "transaction",
            "transaction",
            "balance"
        ]
    );
    let Record::Account(account) = &items[0].record else {
        panic!()
    };
    assert_eq!(account.source_id, "DE02100100100006820101");
    assert_eq!(account.currency, "EUR");
    assert_eq!(
        account.owner_name.as_deref(),
        Some("Lindenhof Handels GmbH")
    );
    assert_eq!(account.servicer_bic.as_deref(), Some("TESTDEFFXXX"));
    let Record::Statement(statement) = &items[1].record else {
        panic!()
    };
    assert_eq!(statement.kind, "camt.053");
    assert_eq!(statement.source_id, "STMT-2024-03-01");
    assert_eq!(statement.sequence.as_deref(), Some("61"));
    assert_eq!(statement.from_date, NaiveDate::from_ymd_opt(2024, 2, 29));

    let b = balances(&items);
    assert_eq!((b[0].kind.as_str(), b[0].amount_minor), ("OPBD", 100_000));
    assert_eq!((b[1].kind.as_str(), b[1].amount_minor), ("CLBD", 117_050));

    let t = transactions(&items);
    let first = t[0];
    assert_eq!(first.source_id, "DE02100100100006820101/STMT-2024-03-01/1");
    assert_eq!(first.amount_minor, 25_050);
    assert_eq!(first.direction, Direction::Credit);
    assert_eq!(first.booked_at.to_rfc3339(), "2024-02-29T09:15:00+00:00");
    assert_eq!(first.value_date, NaiveDate::from_ymd_opt(2024, 2, 29));
    assert_eq!(
        first.counterparty_name.as_deref(),
        Some("Kaffeerösterei M&M")
    );
    assert_eq!(
        first.counterparty_account.as_deref(),
        Some("AT611904300234573201")
    );
    assert_eq!(first.counterparty_bic.as_deref(), Some("TESTATWWXXX"));
    assert_eq!(first.counterparty_country.as_deref(), Some("AT"));
    assert_eq!(first.end_to_end_id.as_deref(), Some("E2E-0001"));
    assert_eq!(first.bank_reference.as_deref(), Some("BANKREF-1"));
    assert_eq!(
        first.bank_transaction_code.as_deref(),
        Some("PMNT/RCDT/ESCT")
    );
    assert_eq!(first.status.as_deref(), Some("BOOK"));
    assert_eq!(
        first.purpose.as_deref(),
        Some("Invoice 2024-117 second line")
    );

    // One entry with two details: two transactions with their own amounts.
    assert_eq!(t[1].source_id, "DE02100100100006820101/STMT-2024-03-01/2/1");
    assert_eq!(t[1].amount_minor, 3000);
    assert_eq!(t[1].direction, Direction::Debit);
    assert_eq!(t[1].counterparty_name.as_deref(), Some("Stadtwerke Nord"));
    assert_eq!(t[1].end_to_end_id, None, "NOTPROVIDED is no id");
    assert_eq!(t[1].purpose.as_deref(), Some("RF18539007547034"));
    assert_eq!(t[2].source_id, "DE02100100100006820101/STMT-2024-03-01/2/2");
    assert_eq!(t[2].amount_minor, 5000);
    assert_eq!(t[2].counterparty_account.as_deref(), Some("ACC-77"));

    assert_eq!(items[3].location.line, 21);
    assert_eq!(
        items[3].location.element.as_deref(),
        Some("Document/BkToCstmrStmt/Stmt[1]/Ntry[1]")
    );
}

/// camt.054 version 2 shape: `Sts` as text, `Dbtr/Nm`, `BIC`, `AmtDtls/TxAmt/Amt`, and a
/// namespace prefix on every element.
pub(super) const NTFCTN_V2: &str = r#"<?xml version="1.0"?>
<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
 <c:BkToCstmrDbtCdtNtfctn>
  <c:GrpHdr><c:MsgId>N-1</c:MsgId><c:CreDtTm>2023-11-02T12:00:00</c:CreDtTm></c:GrpHdr>
  <c:Ntfctn>
   <c:Id>NTF-9</c:Id>
   <c:Acct><c:Id><c:Othr><c:Id>40702810900000001234</c:Id></c:Othr></c:Id></c:Acct>
   <c:Ntry>
    <c:Amt Ccy="RUB">1500.00</c:Amt>
    <c:CdtDbtInd>DBIT</c:CdtDbtInd>
    <c:Sts>PDNG</c:Sts>
    <c:ValDt><c:Dt>2023-11-03</c:Dt></c:ValDt>
    <c:NtryDtls><c:TxDtls>
      <c:AmtDtls><c:TxAmt><c:Amt Ccy="RUB">1500.00</c:Amt></c:TxAmt></c:AmtDtls>
      <c:RltdPties><c:Cdtr><c:Nm>ООО Берёзка</c:Nm></c:Cdtr></c:RltdPties>
      <c:RltdAgts><c:CdtrAgt><c:FinInstnId><c:BIC>TESTRUMMXXX</c:BIC></c:FinInstnId></c:CdtrAgt></c:RltdAgts>
      <c:AddtlTxInf>оплата по счёту 5</c:AddtlTxInf>
    </c:TxDtls></c:NtryDtls>
   </c:Ntry>
  </c:Ntfctn>
 </c:BkToCstmrDbtCdtNtfctn>
</c:Document>"#;

#[test]
fn camt054_v2_with_prefixes_pending_entry_without_booking_date() {
    let (items, errors) = read(&camt(), NTFCTN_V2.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(entities(&items), ["account", "statement", "transaction"]);
    let Record::Statement(s) = &items[1].record else {
        panic!()
    };
    assert_eq!(s.kind, "camt.054");
    assert_eq!(s.created_at, None);
    let t = transactions(&items)[0];
    assert_eq!(t.account_source_id, "40702810900000001234");
    assert_eq!(t.amount_minor, 150_000);
    assert_eq!(t.status.as_deref(), Some("PDNG"));
    // No booking date: the value date stands in.
    assert_eq!(t.booked_at.to_rfc3339(), "2023-11-03T00:00:00+00:00");
    assert_eq!(t.counterparty_name.as_deref(), Some("ООО Берёзка"));
    assert_eq!(t.counterparty_bic.as_deref(), Some("TESTRUMMXXX"));
    assert_eq!(t.purpose.as_deref(), Some("оплата по счёту 5"));
}

#[test]
fn camt052_report_and_zero_decimal_currency() {
    let xml = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.06"><BkToCstmrAcctRpt>
<Rpt><Id>R1</Id><Acct><Id><IBAN>JP00TEST</IBAN></Id></Acct>
<Bal><Tp><CdOrPrtry><Cd>ITBD</Cd></CdOrPrtry></Tp><Amt Ccy="JPY">2700</Amt><CdtDbtInd>DBIT</CdtDbtInd><Dt><DtTm>2024-01-05T10:00:00Z</DtTm></Dt></Bal>
<Ntry><Amt Ccy="JPY">500</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>INFO</Sts><BookgDt><Dt>2024-01-05</Dt></BookgDt></Ntry>
</Rpt></BkToCstmrAcctRpt></Document>"#;
    let (items, errors) = read(&camt(), xml.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let Record::Account(a) = &items[0].record else {
        panic!()
    };
    assert_eq!(
        a.currency, "JPY",
        "the first amount's currency when Acct/Ccy is absent"
    );
    let Record::Statement(s) = &items[1].record else {
        panic!()
    };
    assert_eq!(s.kind, "camt.052");
    assert_eq!(balances(&items)[0].amount_minor, -2700);
    assert_eq!(transactions(&items)[0].amount_minor, 500);
}

#[test]
fn pain_files_are_rejected_with_one_clear_error() {
    let pain001 = r#"<?xml version="1.0"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn><GrpHdr><MsgId>1</MsgId></GrpHdr></CstmrCdtTrfInitn>
</Document>"#;
    let (items, errors) = read(&camt(), pain001.as_bytes());
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert!(errors[0].reason.contains("pain.001"), "{}", errors[0]);
    assert_eq!(errors[0].location.line, 3);

    let unknown = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:acmt.007.001.02"><AcctOpngReq/></Document>"#;
    let (_, errors) = read(&camt(), unknown.as_bytes());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].reason.contains("acmt.007.001.02"),
        "{}",
        errors[0]
    );

    for not_camt in [&b"<html><body>hello</body></html>"[..], b"<Document/>", b""] {
        let (items, errors) = read(&camt(), not_camt);
        assert!(items.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.contains("no ISO 20022 Document"),
            "{}",
            errors[0]
        );
    }
}

#[test]
fn truncated_xml_is_one_file_error_naming_the_element() {
    let cut = &STMT_V8[..STMT_V8.find("<Sts><Cd>BOOK</Cd></Sts>").unwrap()];
    let (items, errors) = read(&camt(), cut.as_bytes());
    // The header and the opening balance came before the cut.
    assert_eq!(entities(&items), ["account", "statement", "balance"]);
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.scope, ErrorScope::File);
    assert_eq!(
        e.location.element.as_deref(),
        Some("Document/BkToCstmrStmt/Stmt/Ntry")
    );
    assert_eq!(
        e.location.line,
        cut.lines().count() as u64,
        "the line of the cut"
    );
    assert!(e.to_string().starts_with("file sample line "), "{e}");
    assert!(e.reason.contains("truncated"));

    let mismatched = STMT_V8.replace("</Bal>", "</Balance>");
    let (_, errors) = read(&camt(), mismatched.as_bytes());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert!(
        errors[0].reason.starts_with("malformed xml"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_entries_are_record_errors_and_the_rest_still_comes() {
    let xml = STMT_V8
        .replacen(
            r#"<Amt Ccy="EUR">250.50</Amt>"#,
            r#"<Amt Ccy="EUR">25O.50</Amt>"#,
            1,
        )
        .replacen(
            "<Dt>2024-02-29</Dt></BookgDt>",
            "<Dt>2024-02-30</Dt></BookgDt>",
            1,
        );
    let (items, errors) = read(&camt(), xml.as_bytes());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| !e.is_fatal()));
    assert_eq!(errors[0].field.as_deref(), Some("Amt"));
    assert_eq!(
        errors[0].location.element.as_deref(),
        Some("Document/BkToCstmrStmt/Stmt[1]/Ntry[1]")
    );
    assert!(
        !errors[0].to_string().contains("25O"),
        "no values in messages"
    );
    assert_eq!(errors[1].field.as_deref(), Some("BookgDt"));
    assert_eq!(errors[1].reason, "not a date or date-time");
    // Both balances still come.
    assert_eq!(balances(&items).len(), 2);

    let no_amount = STMT_V8.replacen(r#"<Amt Ccy="EUR">30.00</Amt>"#, "", 1);
    let (items, errors) = read(&camt(), no_amount.as_bytes());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field.as_deref(), Some("NtryDtls/TxDtls[1]/Amt"));
    assert_eq!(
        transactions(&items).len(),
        2,
        "the sibling detail still comes"
    );

    let no_ccy = STMT_V8.replacen(r#"<Amt Ccy="EUR">1000.00</Amt>"#, "<Amt>1000.00</Amt>", 1);
    let (_, errors) = read(&camt(), no_ccy.as_bytes());
    assert_eq!(errors[0].field.as_deref(), Some("Amt@Ccy"));
    assert_eq!(
        errors[0].location.element.as_deref(),
        Some("Document/BkToCstmrStmt/Stmt[1]/Bal[1]")
    );

    let bad_ind = STMT_V8.replacen(
        "<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>",
        "<CdtDbtInd>X</CdtDbtInd>\n        <Sts>",
        1,
    );
    let (_, errors) = read(&camt(), bad_ind.as_bytes());
    assert_eq!(errors[0].field.as_deref(), Some("CdtDbtInd"));

    let too_precise = STMT_V8.replacen("250.50</Amt>", "250.505</Amt>", 1);
    let (_, errors) = read(&camt(), too_precise.as_bytes());
    assert_eq!(errors[0].reason, "amount has more than 2 decimal places");
}

#[test]
fn a_statement_without_account_skips_its_records() {
    let xml = STMT_V8.replace("<Id><IBAN>DE02100100100006820101</IBAN></Id>", "");
    let (items, errors) = read(&camt(), xml.as_bytes());
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field.as_deref(), Some("Acct/Id"));
}

#[test]
fn hostile_xml_is_refused() {
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><Document/>"#;
    let (_, errors) = read(&camt(), dtd.as_bytes());
    assert!(errors[0].reason.contains("DTD"), "{}", errors[0]);

    let latin1 = r#"<?xml version="1.0" encoding="ISO-8859-1"?><Document/>"#;
    let (_, errors) = read(&camt(), latin1.as_bytes());
    assert!(errors[0].reason.contains("utf-8"), "{}", errors[0]);

    let deep = format!(
        "<Document><BkToCstmrStmt>{}",
        "<a>".repeat(crate::formats::camt::MAX_DEPTH + 5)
    );
    let (_, errors) = read(&camt(), deep.as_bytes());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].reason.contains("nest deeper"), "{}", errors[0]);

    let huge_text = format!(
        "<Document><BkToCstmrStmt><Stmt><Id>{}</Id></Stmt></BkToCstmrStmt></Document>",
        "x".repeat((crate::formats::camt::MAX_EVENT_BYTES + (128 << 10)) as usize)
    );
    let (_, errors) = read(&camt(), huge_text.as_bytes());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].reason.contains("larger than"), "{}", errors[0]);

    let unknown_entity = STMT_V8.replace("M&amp;M", "M&nbsp;M");
    let (items, errors) = read(&camt(), unknown_entity.as_bytes());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].field.as_deref(),
        Some("NtryDtls/TxDtls[1]/RltdPties/Dbtr/Pty/Nm")
    );
    assert_eq!(transactions(&items).len(), 2);
}

#[test]
fn several_statements_and_an_envelope() {
    let one = STMT_V8
        .split("<Stmt>")
        .nth(1)
        .and_then(|s| s.split("</Stmt>").next())
        .unwrap();
    let second = one
        .replace("STMT-2024-03-01", "STMT-2024-03-02")
        .replace("DE02100100100006820101", "DE89370400440532013000");
    let xml = format!(
        "<Envelope><AppHdr><MsgDefIdr>camt.053.001.08</MsgDefIdr></AppHdr>\
         <Document><BkToCstmrStmt><Stmt>{one}</Stmt><Stmt>{second}</Stmt></BkToCstmrStmt></Document></Envelope>"
    );
    let (items, errors) = read(&camt(), xml.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let accounts = items
        .iter()
        .filter(|i| matches!(i.record, Record::Account(_)))
        .count();
    assert_eq!(accounts, 2);
    let t = transactions(&items);
    assert_eq!(t.len(), 6);
    assert_eq!(t[3].source_id, "DE89370400440532013000/STMT-2024-03-02/1");
    assert!(
        items[items.len() - 1]
            .location
            .element
            .as_deref()
            .unwrap()
            .starts_with("Envelope/Document/BkToCstmrStmt/Stmt[2]/")
    );
}

#[test]
fn reading_twice_gives_the_same_ids() {
    let (a, _) = read(&camt(), STMT_V8.as_bytes());
    let (b, _) = read(&camt(), STMT_V8.as_bytes());
    assert_eq!(a, b);
}
