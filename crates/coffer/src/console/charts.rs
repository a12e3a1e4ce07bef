//! The console's charts, drawn on the server by plotters as SVG and served as images
//! (`<img src=…svg>`), so they need no script and no inline style under the console's
//! Content-Security-Policy. Each page that shows one also shows its figures as a table,
//! for screen readers and for copying.

use plotters::prelude::*;

const WIDTH: u32 = 640;
const BLUE: RGBColor = RGBColor(11, 87, 208);
const GREEN: RGBColor = RGBColor(10, 107, 45);
const RED: RGBColor = RGBColor(163, 22, 26);

/// A bar per label (`values` in major units), largest first as given.
pub fn bars(
    labels: &[String],
    values: &[f64],
    unit: &str,
) -> Result<String, DrawingAreaErrorKind<std::io::Error>> {
    let height = 110 + 44 * labels.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = values.iter().copied().fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let count = labels.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..top, (0..count).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(unit)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 15))
            .y_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(index) => labels.get(*index as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(values.iter().enumerate().map(|(index, value)| {
            let index = index as i32;
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(index)), (*value, SegmentValue::Exact(index + 1))],
                BLUE.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// Income in green, spending in red: the two series of a money trend.
pub const INCOME: RGBColor = GREEN;
pub const SPENDING: RGBColor = RED;
/// Any other series.
pub const PLAIN: RGBColor = BLUE;

/// One line per series over the same labels (months, days), values in `unit`.
pub fn lines(
    labels: &[String],
    series: &[(&str, RGBColor, Vec<f64>)],
    unit: &str,
) -> Result<String, DrawingAreaErrorKind<std::io::Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let top =
            series.iter().flat_map(|(_, _, values)| values).copied().fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let count = labels.len().max(1) as i32;
        // Few labels on a long axis: every label if they fit, else about eight.
        let step = (labels.len() / 8).max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d((0..count).into_segmented(), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(unit)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 15))
            .x_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(index) if (*index as usize).is_multiple_of(step) => {
                    labels.get(*index as usize).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .draw()?;
        for (name, color, values) in series {
            let points: Vec<(SegmentValue<i32>, f64)> =
                values.iter().enumerate().map(|(i, v)| (SegmentValue::CenterOf(i as i32), *v)).collect();
            let color = *color;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(3)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 15))
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels_and_no_inline_style() {
        let svg = bars(&["Groceries".into(), "Transport".into()], &[120.5, 30.0], "USD").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Groceries") && svg.contains("Transport"));
        assert!(
            !svg.contains("style="),
            "the console's CSP would not need it, but an <img> is safer without"
        );
        let series = [("Income", INCOME, vec![100.0, 80.0]), ("Spending", SPENDING, vec![50.0, 90.0])];
        let svg = lines(&["Nov".into(), "Dec".into()], &series, "USD").unwrap();
        assert!(svg.contains("Income") && svg.contains("Spending") && svg.contains("Dec"));
        let empty = bars(&[], &[], "USD").unwrap();
        assert!(empty.starts_with("<svg"));
    }
}
