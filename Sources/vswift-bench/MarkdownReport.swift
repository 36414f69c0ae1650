import Foundation

/// The Markdown version of a run's report: how it was started, on what, from which commit, the
/// table and the notes — a file that can go into bench/results as it is.
enum MarkdownReport {
    static func render(title: String, invocation: InvocationInfo, machine: MachineInfo, setup: [String],
                       summaries: [Summary], notes: [String]) -> String {
        var lines = ["# \(title)", ""]
        lines.append("- command: `\(invocation.commandLine)`")
        lines.append("- date: \(invocation.date)")
        lines.append("- machine: \(machine.model), \(machine.cpus) CPUs")
        lines.append("- kernel: \(machine.kernel)")
        lines.append("- commit: \(invocation.commit)")
        for item in setup { lines.append("- \(item)") }
        lines += ["", table(summaries)]
        if !notes.isEmpty {
            lines += ["", "## Notes", ""]
            lines += notes.map { "- " + escaped($0) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The summary table; the flow-table load and cycle columns appear only when some switch has them.
    static func table(_ summaries: [Summary]) -> String {
        let withLoad = summaries.contains { $0.flowLoadSeconds != nil }
        var header = ["scenario", "switch", "Mpps (median)", "Mpps range", "offered Mpps", "ratio", "user ns/pkt", "total ns/pkt", "allocs/pkt"]
        if withLoad { header.append("table load s") }
        let cycles = CycleColumn.shown(in: summaries)
        header += cycles.map(\.markdown)
        var rows = [header, header.map { _ in "---" }]
        for s in summaries {
            var row = [s.scenario, s.switchName, String(format: "%.3f", s.mpps),
                       String(format: "%.3f–%.3f", s.mppsMin, s.mppsMax),
                       String(format: "%.3f", s.offeredMpps) + (s.generatorBound ? " (generator-bound)" : ""),
                       s.ratio.map { String(format: "%.2f", $0) } ?? (s.ratioWithheld.map { "– (\($0))" } ?? "–"),
                       String(format: "%.1f", s.userNanosecondsPerPacket),
                       String(format: "%.0f", s.totalNanosecondsPerPacket),
                       s.allocationsPerPacket.map { String(format: "%.3f", $0) } ?? "–"]
            if withLoad { row.append(s.flowLoadSeconds.map { String(format: "%.2f", $0) } ?? "–") }
            row += cycles.map { $0.cell(s, missing: "–") }
            rows.append(row)
        }
        return rows.map { "| " + $0.map(escaped).joined(separator: " | ") + " |" }.joined(separator: "\n")
    }

    /// Text safe in a table cell or list item: a pipe would end the cell, a newline the row.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
