import Foundation
import VSwiftTesting

/// `pipeline --interleave N`: the selected scenarios' harnesses are all built first, then run in
/// turn, `--packets` each, for N rounds (A B C A B C …), so that each round of a scenario is
/// measured within a few tens of milliseconds of the same round of the first one (the baseline).
/// On a host that disturbs whole seconds or minutes (this project's development VM), a ratio of
/// two scenarios measured one after the other moves by ±10 %; the ratio of neighbouring rounds
/// does not, and its median over many rounds is the number to compare with a target such as
/// "≥ 0.97 × static encapsulation". Printed per scenario: CPU ns/packet (minimum, p25, median
/// of the rounds), and against the baseline the median and quartiles of the per-round ratios
/// (baseline ÷ scenario: above 1, faster than the baseline) and the ratio of the minima.
extension Pipeline {
    func runInterleaved() throws {
        let scenarios = selectedScenarios
        guard let baseline = scenarios.first else { return }
        let harnesses = try scenarios.map { try warmHarness($0) }
        var cpuNanoseconds = Array(repeating: [Double](), count: scenarios.count)
        for _ in 0..<interleave {
            for (i, harness) in harnesses.enumerated() {
                cpuNanoseconds[i].append(harness.run(packets: packets).cpuNanosecondsPerPacket)
            }
        }
        for harness in harnesses {
            let census = harness.accounting()
            precondition(census.isConsistent, "frame accounting broken: \(census)")
        }
        print("\(interleave) rounds of \(packets) packets per scenario, alternating; ratios are \(baseline.name) ÷ scenario, per round")
        print(row(["scenario", "min cpu ns", "p25", "median", "ratio med", "ratio p25", "ratio p75", "min ÷ min"]))
        for (i, scenario) in scenarios.enumerated() {
            let own = cpuNanoseconds[i].sorted()
            let ratios = zip(cpuNanoseconds[0], cpuNanoseconds[i]).map { $0 / $1 }.sorted()
            let minima = cpuNanoseconds[0].min()! / own[0]
            print(row([scenario.name] + [own[0], Statistics.quantile(sorted: own, 0.25), Statistics.median(own)].map { String(format: "%.1f", $0) }
                      + [Statistics.median(ratios), Statistics.quantile(sorted: ratios, 0.25), Statistics.quantile(sorted: ratios, 0.75), minima]
                          .map { String(format: "%.3f", $0) }))
        }
    }
}
