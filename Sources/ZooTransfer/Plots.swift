import Foundation

/// SVG drawings of a training run and an evaluation (`zoo train --plot`, `zoo eval --plot`): plain SVG 1.1, no
/// scripts, no external resources; text is escaped.
public enum Plots {
    /// Loss (left) and accuracy (right) per epoch, training and validation, as an SVG document.
    public static func trainingCurves(_ epochs: [EpochMetrics]) -> String {
        let width = 900.0, height = 360.0
        var svg = header(width: width, height: height)
        let series: [(String, [Double?], [Double?])] = [
            ("loss", epochs.map { $0.trainLoss }, epochs.map { $0.valLoss }),
            ("accuracy", epochs.map { $0.trainAccuracy }, epochs.map { $0.valAccuracy }),
        ]
        for (panel, (title, train, val)) in series.enumerated() {
            let x0 = 60.0 + Double(panel) * 450, y0 = 40.0, w = 360.0, h = 260.0
            let values = (train + val).compactMap { $0 }.filter(\.isFinite)
            var low = title == "accuracy" ? 0 : (values.min() ?? 0), high = title == "accuracy" ? 1 : (values.max() ?? 1)
            if high <= low { high = low + 1; low -= 0 }
            let n = max(epochs.count, 1)
            func px(_ i: Int) -> Double { n == 1 ? x0 + w / 2 : x0 + w * Double(i) / Double(n - 1) }
            func py(_ v: Double) -> Double { y0 + h - h * (v - low) / (high - low) }
            svg += "<text x=\"\(f(x0 + w / 2))\" y=\"24\" text-anchor=\"middle\" font-weight=\"bold\">\(title)</text>\n"
            svg += "<rect x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"none\" stroke=\"#888\"/>\n"
            for k in 0...4 {
                let v = low + (high - low) * Double(k) / 4
                svg += "<text x=\"\(f(x0 - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\" font-size=\"11\">\(String(format: "%.3g", v))</text>\n"
            }
            svg += "<text x=\"\(f(x0 + w / 2))\" y=\"\(f(y0 + h + 32))\" text-anchor=\"middle\" font-size=\"12\">epoch (1-\(epochs.count))</text>\n"
            for (name, data, colour) in [("train", train, "#1f77b4"), ("val", val, "#d62728")] {
                let points = data.enumerated().compactMap { i, v in v.flatMap { $0.isFinite ? "\(f(px(i))),\(f(py($0)))" : nil } }
                guard !points.isEmpty else { continue }
                svg += "<polyline class=\"\(name)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
            }
            svg += "<text x=\"\(f(x0 + w - 4))\" y=\"\(f(y0 + 16))\" text-anchor=\"end\" font-size=\"12\" fill=\"#1f77b4\">train</text>\n"
            svg += "<text x=\"\(f(x0 + w - 4))\" y=\"\(f(y0 + 32))\" text-anchor=\"end\" font-size=\"12\" fill=\"#d62728\">val</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// The confusion matrix as a heat map (rows: true class, columns: predicted), counts in the cells.
    public static func confusion(_ report: ClassificationReport) -> String {
        let k = report.classes.count, cell = k > 30 ? 12.0 : 36.0, margin = 140.0
        let size = margin + cell * Double(k) + 20
        var svg = header(width: size, height: size)
        let peak = max(report.confusion.flatMap { $0 }.max() ?? 1, 1)
        for (r, row) in report.confusion.enumerated() {
            svg += "<text x=\"\(f(margin - 6))\" y=\"\(f(margin + cell * (Double(r) + 0.6)))\" text-anchor=\"end\" font-size=\"11\">\(escape(report.classes[r]))</text>\n"
            for (c, count) in row.enumerated() {
                let shade = Int(255 - 200 * Double(count) / Double(peak))
                svg += "<rect class=\"cell\" x=\"\(f(margin + cell * Double(c)))\" y=\"\(f(margin + cell * Double(r)))\" width=\"\(f(cell))\" height=\"\(f(cell))\" "
                    + "fill=\"rgb(\(shade),\(shade),255)\" stroke=\"#ccc\"><title>\(escape(report.classes[r])) as \(escape(report.classes[c])): \(count)</title></rect>\n"
                if cell >= 20 {
                    svg += "<text x=\"\(f(margin + cell * (Double(c) + 0.5)))\" y=\"\(f(margin + cell * (Double(r) + 0.62)))\" text-anchor=\"middle\" font-size=\"11\">\(count)</text>\n"
                }
            }
        }
        for (c, name) in report.classes.enumerated() {
            let x = margin + cell * (Double(c) + 0.6)
            svg += "<text x=\"\(f(x))\" y=\"\(f(margin - 6))\" transform=\"rotate(-60 \(f(x)) \(f(margin - 6)))\" font-size=\"11\">\(escape(name))</text>\n"
        }
        svg += "<text x=\"8\" y=\"16\" font-size=\"12\">rows: true class, columns: predicted; accuracy \(String(format: "%.4f", report.accuracy))</text>\n"
        return svg + "</svg>\n"
    }

    static func header(width: Double, height: Double) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" "
            + "viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// XML text escaping (class names come from folder names).
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out += ch.value < 0x20 ? "?" : String(ch)
            }
        }
        return out
    }
}
