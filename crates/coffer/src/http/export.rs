//! CSV downloads (the expense and operation exports): one line per row, fields quoted
//! when they need to be and defused against spreadsheet formulas.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

/// Appends one CSV line of `fields`.
pub fn push_csv_line(out: &mut String, fields: &[String]) {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&field_text(field));
    }
    out.push('\n');
}

/// A CSV download named `filename`.
pub fn csv_response(filename: &str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// One CSV field, quoted when it needs to be; text (not a number) with a leading `=`,
/// `+`, `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn field_text(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err();
    let value = if formula { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(field_text("plain"), "plain");
        assert_eq!(field_text("a,b"), "\"a,b\"");
        assert_eq!(field_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field_text("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field_text("-5"), "-5", "a number stays a number");
        assert_eq!(field_text("-1+cmd"), "'-1+cmd");
        let mut line = String::new();
        push_csv_line(&mut line, &["a".into(), "b,c".into()]);
        assert_eq!(line, "a,\"b,c\"\n");
    }
}
