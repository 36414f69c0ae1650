import Foundation

/// Mpps against the number of flow rules, one line per switch, as gnuplot data and a script that
/// draws it into a PNG (log x axis). Pure text: `Sweep` writes the files and runs gnuplot.
struct PlotScript {
    struct Point: Equatable {
        var rules: Int
        var mpps: Double
    }

    /// Each switch's points, in the order switches first appear, points sorted by rules.
    let series: [(name: String, points: [Point])]

    init(points: [(switchName: String, rules: Int, mpps: Double)]) {
        var order: [String] = []
        var bySwitch: [String: [Point]] = [:]
        for p in points {
            if bySwitch[p.switchName] == nil { order.append(p.switchName) }
            bySwitch[p.switchName, default: []].append(Point(rules: p.rules, mpps: p.mpps))
        }
        series = order.map { ($0, bySwitch[$0]!.sorted { $0.rules < $1.rules }) }
    }

    /// gnuplot's data format: one block per switch (blocks separated by two blank lines, selected
    /// with `index N`), "rules Mpps" per line.
    var data: String {
        series.map { s in
            "# \(s.name)\n" + s.points.map { "\($0.rules) \(String(format: "%.4f", $0.mpps))" }.joined(separator: "\n")
        }.joined(separator: "\n\n\n") + "\n"
    }

    /// A script plotting `dataPath` into `pngPath`.
    func script(dataPath: String, pngPath: String, title: String) -> String {
        let plots = series.enumerated().map { index, s in
            "\(Self.quoted(dataPath)) index \(index) using 1:2 with linespoints title \(Self.quoted(s.name))"
        }
        return """
            set terminal png size 900,560 noenhanced
            set output \(Self.quoted(pngPath))
            set title \(Self.quoted(title))
            set logscale x 10
            set xtics (\(ticks))
            set offsets graph 0.05, graph 0.05, 0, 0
            set xlabel "flow rules (the generator offers min(rules, 60000) flows)"
            set ylabel "Mpps delivered to the sink"
            set yrange [0:*]
            set grid
            set key outside right
            plot \(plots.joined(separator: ", \\\n     "))

            """
    }

    /// One x tic per measured table size, labelled 1, 1k, 100k, 1M...
    var ticks: String {
        Set(series.flatMap { $0.points.map(\.rules) }).sorted().map { "\(Self.quoted(Self.shortCount($0))) \($0)" }
            .joined(separator: ", ")
    }

    static func shortCount(_ n: Int) -> String {
        if n >= 1_000_000 && n % 1_000_000 == 0 { return "\(n / 1_000_000)M" }
        if n >= 1000 && n % 1000 == 0 { return "\(n / 1000)k" }
        return "\(n)"
    }

    /// A gnuplot string literal (single quotes: no escapes but the doubled quote).
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
