import ArgumentParser
import Foundation
import Glibc

/// `forward --rules N --flows min(N, 60000)` for several N, each on a fresh topology, in one
/// table and (with --plot) one PNG of Mpps against N.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Forwarding rate against the size of the flow table (vswift, xsk_fwd, OVS if installed), optionally plotted.",
        discussion: """
            Runs the forward benchmark with --rules N --flows min(N, 60000) for each N of --points, then prints
            one table. --plot PATH draws Mpps against N (log x axis) with gnuplot (scripts/setup-bench.sh
            installs it); the data and the gnuplot script are written next to the PNG either way.
            """)

    @OptionGroup var options: ForwardOptions

    @Option(help: "Flow-table sizes to measure, comma-separated.")
    var points: String = "1,1000,100000,1000000"

    @Option(help: "Write a PNG plot of Mpps against the number of flow rules here (needs gnuplot).")
    var plot: String?

    /// The generator varies the UDP source port, so it offers at most this many flows.
    static let maximumOfferedFlows = 60_000

    static func parsePoints(_ text: String) throws -> [Int] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && (1...2_000_000).contains($0!) }) else {
            throw ValidationError("--points must be comma-separated numbers 1...2000000, e.g. 1,1000,100000,1000000")
        }
        return values.map { $0! }
    }

    func validate() throws {
        _ = try Self.parsePoints(points)
        if let plot {
            guard plot.hasSuffix(".png") else { throw ValidationError("--plot must name a .png file") }
            try ForwardOptions.validateOutput(plot)
        }
    }

    mutating func run() throws {
        try requireRoot()
        let sizes = try Self.parsePoints(points)
        if plot != nil && !Self.hasGnuplot {
            log("vswift-bench: note: gnuplot is not installed (apt-get install gnuplot-nox, or scripts/setup-bench.sh): the plot's data and script will be written, not the PNG")
        }
        try runInterruptibly {
            var outcomes: [ForwardRun.Outcome] = []
            var failure: Error?
            for rules in sizes {
                let run = ForwardRun(options: options, flows: min(rules, Self.maximumOfferedFlows), rules: rules, tunnel: .none)
                do {
                    outcomes.append(try run.measure())
                } catch BenchError.failed(let why) {
                    // Minutes of measurements are not thrown away: the points done are still reported.
                    log("vswift-bench: sweep: the \(rules)-rule point failed: \(why)"
                        + (outcomes.isEmpty ? "" : "; reporting the \(outcomes.count) point(s) measured before it"))
                    failure = BenchError.failed("sweep stopped at \(rules) rules: \(why)")
                    break
                }
            }
            if !outcomes.isEmpty {
                try BenchOutput(options: options).emit(outcomes, title: "vswift-bench sweep")
                if let plot { try draw(outcomes, to: plot) }
            }
            if let failure { throw failure }
        }
    }

    static var hasGnuplot: Bool { access(systemTool("gnuplot"), X_OK) == 0 }

    private func draw(_ outcomes: [ForwardRun.Outcome], to png: String) throws {
        let plot = PlotScript(points: outcomes.flatMap { outcome in
            outcome.summaries.map { (switchName: $0.switchName, rules: outcome.rules, mpps: $0.mpps) }
        })
        let stem = String(png.dropLast(4))
        let dataPath = stem + ".dat", scriptPath = stem + ".gp"
        let title = "\(options.size)-byte frames on veth, Mpps vs flow rules"
        for (path, text) in [(dataPath, plot.data), (scriptPath, plot.script(dataPath: dataPath, pngPath: png, title: title))] {
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
                throw BenchError.failed("cannot write \(path)")
            }
        }
        guard Self.hasGnuplot else {
            print("plot: gnuplot is not installed; wrote \(dataPath) and \(scriptPath) (gnuplot \(scriptPath) draws \(png))")
            return
        }
        try runCommand([systemTool("gnuplot"), scriptPath])
        print("plot: \(png) (data \(dataPath), script \(scriptPath))")
    }
}
