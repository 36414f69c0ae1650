import Foundation

/// Prints the table and notes of one or more scenarios and writes the JSON and Markdown reports.
struct BenchOutput {
    let options: ForwardOptions

    func emit(_ outcomes: [ForwardRun.Outcome], title: String = "vswift-bench forward") throws {
        let machine = MachineInfo.current()
        let invocation = InvocationInfo.current()
        let summaries = outcomes.flatMap(\.summaries)
        let results = outcomes.flatMap(\.results)
        let setup = setupLines(outcomes)

        print("machine: \(machine.cpus) CPUs, \(machine.model); kernel \(machine.kernel)")
        for line in setup { print(line) }
        print("")
        print(Table.render(summaries: summaries, showRange: options.runs > 1))
        let contended = results.filter(\.contended).count
        if contended > 0 {
            print("")
            print("warning: in \(contended) of \(results.count) runs another process took CPU time from the forwarding thread; those numbers are low (see notes)")
        }
        let notes = Self.notes(outcomes)
        if !notes.isEmpty {
            print("")
            for note in notes { print("note: \(note)") }
        }

        if let json = options.json {
            let report = BenchReport(
                invocation: invocation, machine: machine,
                options: BenchOptions(
                    windowSeconds: options.window, warmupSeconds: options.warmup, ovsWarmupSeconds: options.resolvedOVSWarmup,
                    frameSize: options.size,
                    scenarios: outcomes.map { ScenarioOptions(scenario: $0.scenario, flows: $0.flows, rules: $0.rules, tunnel: $0.tunnel.rawValue) },
                    switchCPU: options.cpu, generatorCPU: options.resolvedGeneratorCPU,
                    generator: outcomes.first?.generator.rawValue ?? options.generator.rawValue, runs: options.runs,
                    baseline: outcomes.contains(where: \.baseline), ovs: outcomes.contains(where: \.ovs),
                    xdpCache: options.xdpCache.rawValue, receiveCPU: options.resolvedReceiveCPU.rawValue),
                allocationCounting: AllocationCounter.isAvailable ? "malloc-interposer (worker threads)" : "unavailable: \(AllocationCounter.unavailableReason)",
                summary: summaries, runs: results)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try write(try encoder.encode(report) + Data("\n".utf8), to: json)
        }
        if let markdown = options.markdownPath {
            let text = MarkdownReport.render(title: title, invocation: invocation, machine: machine, setup: setup,
                                             summaries: summaries, notes: notes)
            try write(Data(text.utf8), to: markdown)
            log("vswift-bench: Markdown report: \(markdown)")
        }
    }

    func setupLines(_ outcomes: [ForwardRun.Outcome]) -> [String] {
        let ovsWarmup = options.ovsWarmup.map { " (OVS: \($0) s)" } ?? ""
        var lines = ["frames: \(options.size) bytes; window \(options.window) s after \(options.warmup) s warm-up\(ovsWarmup); \(options.runs) run(s) each, medians shown",
                     "CPUs: switch \(options.cpu), generator \(options.resolvedGeneratorCPU); s0's receive path (NAPI) on the \(options.resolvedReceiveCPU.rawValue) CPU; vswift's XDP flow cache: \(options.xdpCache.rawValue)"]
        for backend in Set(outcomes.map(\.generator)).sorted(by: { $0.rawValue < $1.rawValue }) {
            lines.append("generator: \(backend.explanation)")
        }
        let bound = outcomes.flatMap(\.summaries).filter(\.generatorBound)
        if !bound.isEmpty {
            lines.append("generator-bound (forwarded ≥ \(Int(RunResult.generatorBoundShare * 100)) % of offered in some run; Mpps is not the switch's limit and no ratio is given; compare per-packet costs): "
                + bound.map { "\($0.scenario) \($0.switchName)" }.joined(separator: ", "))
        }
        for outcome in outcomes {
            let table = outcome.tunnel != .none ? "one in_port -> output rule per switch"
                : outcome.rules > 0 ? "\(outcome.rules) rule(s)" : "NORMAL"
            var line = "\(outcome.scenario): \(outcome.flows) flow(s), \(table)"
            switch outcome.tunnel {
            case .none: break
            case .encap: line += "; vswift encapsulates in LISP, OVS (ovs-vxlan) in VXLAN; ratio against vswift-p2p"
            case .decap: line += "; vswift decapsulates LISP, OVS (ovs-vxlan) VXLAN; ratio against vswift-p2p"
            case .roundtrip:
                let cpus = options.resolvedSecondSwitchCPU == options.cpu
                    ? "share the switch CPU \(options.cpu)" : "on CPUs \(options.cpu) (A) and \(options.resolvedSecondSwitchCPU) (B)"
                line += "; two vswift switches (A encapsulates in LISP, B decapsulates) \(cpus); vswift-p2p: the same two switches without tunnels"
                    + (outcome.ovs ? "; ovs-vxlan: two ovs-vswitchd (A encapsulates in VXLAN, B decapsulates), PMDs placed the same way" : "")
            }
            lines.append(line)
        }
        return lines
    }

    /// Each run's notes, labelled, then the scenarios' own.
    static func notes(_ outcomes: [ForwardRun.Outcome]) -> [String] {
        outcomes.flatMap { outcome in
            let prefix = outcomes.count > 1 ? "\(outcome.scenario): " : ""
            return outcome.results.flatMap { r in r.notes.map { "\(prefix)\(r.switchName) run \(r.run): \($0)" } }
                + outcome.notes.map { prefix + $0 }
        }
    }

    private func write(_ data: Data, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw BenchError.failed("cannot write \(path)")
        }
    }
}
