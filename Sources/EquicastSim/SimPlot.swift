/// Convergence curves as a self-contained SVG: the fraction of live nodes with the full view over simulated
/// time, one curve per run, with the faults marked.
public enum SimPlot {
    public struct Series {
        public let label: String
        /// (seconds, fraction 0...1)
        public let points: [(Double, Double)]
        public init(label: String, points: [(Double, Double)]) {
            self.label = label
            self.points = points
        }
    }

    public static func series(_ report: SimReport, label: String? = nil) -> Series {
        Series(
            label: label ?? "N = \(report.options.nodeCount)",
            points: report.samples.map {
                let fraction = report.options.scenario == .rollout ? $0.verifiedFraction : $0.convergedFraction
                return (Double($0.milliseconds) / 1000, fraction)
            })
    }

    /// Marks for a report's faults: (seconds, text).
    public static func markers(_ report: SimReport) -> [(Double, String)] {
        let o = report.options
        switch o.scenario {
        case .crash: return [(Double(o.crashAt) / 1000, "crash")]
        case .adversary:
            return [
                (Double(o.attackAt) / 1000, "attack"), (Double(o.crashAt) / 1000, "crash"),
                (Double(o.faultPhase) / 1000, "attack stops"),
            ]
        case .partition:
            return [(Double(o.partitionAt) / 1000, "partition"), (Double(o.partitionHealAt) / 1000, "heal")]
        case .churn: return [(Double(o.faultPhase) / 1000, "faults stop")]
        case .join: return []
        case .rollout: return [(Double(o.rolloutAt) / 1000, "release to node 0")]
        }
    }

    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    public static func svg(title: String, series: [Series], markers: [(Double, String)] = []) -> String {
        let width = 720.0
        let height = 360.0
        let left = 60.0
        let right = 20.0
        let top = 40.0
        let bottom = 50.0
        let plotW = width - left - right
        let plotH = height - top - bottom
        var xMax = 1.0
        for s in series { for p in s.points { xMax = max(xMax, p.0) } }
        let step = niceStep(xMax / 8)
        xMax = (xMax / step).rounded(.up) * step
        func x(_ v: Double) -> Double { left + v / xMax * plotW }
        func y(_ v: Double) -> Double { top + (1 - v) * plotH }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        out += "font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out +=
            "<text x=\"\(fmt(width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        // Grid and axes.
        for i in 0...4 {
            let v = Double(i) / 4
            out +=
                "<line x1=\"\(fmt(left))\" y1=\"\(fmt(y(v)))\" x2=\"\(fmt(left + plotW))\" y2=\"\(fmt(y(v)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(v) + 4))\" text-anchor=\"end\">\(Int(v * 100))%</text>\n"
        }
        var t = 0.0
        while t <= xMax + step / 2 {
            out +=
                "<line x1=\"\(fmt(x(t)))\" y1=\"\(fmt(top))\" x2=\"\(fmt(x(t)))\" y2=\"\(fmt(top + plotH))\" stroke=\"#eee\"/>\n"
            out += "<text x=\"\(fmt(x(t)))\" y=\"\(fmt(top + plotH + 16))\" text-anchor=\"middle\">\(trim(t))</text>\n"
            t += step
        }
        out +=
            "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        out +=
            "<text x=\"\(fmt(left + plotW / 2))\" y=\"\(fmt(height - 12))\" text-anchor=\"middle\">simulated seconds</text>\n"
        out +=
            "<text x=\"14\" y=\"\(fmt(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(fmt(top + plotH / 2)))\">nodes with the full view</text>\n"
        for (at, label) in markers {
            out +=
                "<line x1=\"\(fmt(x(at)))\" y1=\"\(fmt(top))\" x2=\"\(fmt(x(at)))\" y2=\"\(fmt(top + plotH))\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
            out += "<text x=\"\(fmt(x(at) + 4))\" y=\"\(fmt(top + 14))\" fill=\"#555\">\(escape(label))</text>\n"
        }
        for (i, s) in series.enumerated() {
            let colour = colours[i % colours.count]
            let path = s.points.map { "\(fmt(x($0.0))),\(fmt(y($0.1)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            let ly = top + 16 + Double(i) * 16
            out +=
                "<line x1=\"\(fmt(left + plotW - 110))\" y1=\"\(fmt(ly + 40))\" x2=\"\(fmt(left + plotW - 90))\" y2=\"\(fmt(ly + 40))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(fmt(left + plotW - 85))\" y=\"\(fmt(ly + 44))\">\(escape(s.label))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    static func niceStep(_ raw: Double) -> Double {
        var base = 1.0
        while base * 10 <= raw { base *= 10 }
        while base > raw && base > 0.001 { base /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where base * m >= raw { return base * m }
        return base * 10
    }

    static func fmt(_ v: Double) -> String { oneDecimal(v) }

    static func trim(_ v: Double) -> String {
        v == v.rounded() ? "\(Int(v))" : oneDecimal(v)
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
