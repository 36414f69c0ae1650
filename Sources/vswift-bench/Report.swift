import Foundation
import Glibc
import VSwiftDatapath

/// One measured window of one switch.
struct RunResult: Codable {
    var scenario: String
    var switchName: String
    var run: Int
    var windowSeconds: Double
    /// Frames and bytes the sink counted in the window.
    var packets: UInt64
    var bytes: UInt64
    var mpps: Double
    /// Frames the generator produced per second in the window (what was offered to s0).
    var offeredMpps: Double
    /// The generator backend that offered them (GeneratorBackend's raw value).
    var generator: String = GeneratorBackend.auto.rawValue
    /// The switch forwarded within 10 % of what was offered: the generator, not the switch, may
    /// have set the rate, so the Mpps says nothing about the switch's limit (see `isGeneratorBound`).
    var generatorBound = false
    var userNanosecondsPerPacket: Double
    var totalNanosecondsPerPacket: Double
    /// Share of one CPU the switch's forwarding thread(s) used in the window.
    var cpuUtilization: Double
    var userTicks: UInt64
    var systemTicks: UInt64
    /// vswift only: heap allocations by the worker thread(s) in the window, and per packet.
    var workerAllocations: Int?
    var allocationsPerPacket: Double?
    /// vswift only: allocations by the whole bench process in the window (main thread, generator...).
    var processAllocations: Int?
    /// vswift only: its own counters over the window (s0 received, s1 transmitted, s0 receive drops).
    var switchRxPackets: UInt64?
    var switchTxPackets: UInt64?
    var switchRxDropped: UInt64?
    /// vswift only: the kernel's statistics of s0's AF_XDP socket over the window.
    var switchRxSocket: XSKStatistics?
    /// With --rules: seconds the switch took to install its flow table (OVS: `ovs-ofctl add-flows`).
    var flowLoadSeconds: Double?
    /// OVS only: upcalls (packets without a megaflow, sent to the OpenFlow tables) in the window,
    /// and those that failed (packets dropped, mostly at the datapath's flow limit).
    var ovsUpcalls: UInt64?
    var ovsFailedUpcalls: UInt64?
    /// CPU cycles of the switch's forwarding thread(s) per packet, all and in user mode, where the
    /// machine has hardware counters (nil otherwise; a note says why).
    var cyclesPerPacket: Double?
    var userCyclesPerPacket: Double?
    /// Time-stamp-counter cycles the forwarding thread(s) spent outside system calls in rounds
    /// that received frames, per packet: vswift's workers account them per round
    /// (`WorkerCycles`, over the window), xsk_fwd the same way (over its whole run, printed at
    /// exit). Counted to the cycle on any x86 machine, unlike the tick-sampled user ns/pkt; TSC
    /// cycles tick at `tscGigahertz`, not necessarily the core's clock.
    var tscUserCyclesPerPacket: Double?
    var tscGigahertz: Double?
    /// The same in core cycles: TSC cycles × the core clock over the TSC rate, both measured on
    /// the switch CPU before the runs (see CoreClock).
    var userCoreCyclesPerPacket: Double?
    var coreGigahertz: Double?
    /// The forwarding thread did not get its whole CPU although traffic was waiting: not a clean run.
    var contended = false
    /// vswift-xdp only: the window's frames by path (XDP hit or the workers) and the first packets.
    var xdpPath: XDPPathCounts?
    var notes: [String]

    enum CodingKeys: String, CodingKey {
        case xdpPath
        case scenario, switchName = "switch", run, windowSeconds, packets, bytes, mpps, offeredMpps, generator, generatorBound
        case userNanosecondsPerPacket = "userNsPerPacket", totalNanosecondsPerPacket = "totalNsPerPacket"
        case cpuUtilization, userTicks, systemTicks, workerAllocations, allocationsPerPacket, processAllocations
        case switchRxPackets, switchTxPackets, switchRxDropped, switchRxSocket, flowLoadSeconds, ovsUpcalls, ovsFailedUpcalls, contended, notes
        case cyclesPerPacket, userCyclesPerPacket, tscUserCyclesPerPacket, tscGigahertz, userCoreCyclesPerPacket, coreGigahertz
    }
}

extension RunResult {
    /// Forwarded within this share of the offered rate: the generator may be what limits the run.
    static let generatorBoundShare = 0.9

    static func isGeneratorBound(mpps: Double, offeredMpps: Double) -> Bool {
        offeredMpps > 0 && mpps >= generatorBoundShare * offeredMpps
    }
}

/// Median and range over runs of one switch.
struct Summary: Codable {
    var scenario: String
    var switchName: String
    var runs: Int
    /// Runs in which another process took CPU time from the forwarding thread.
    var contendedRuns: Int
    var mpps: Double
    var mppsMin: Double
    var mppsMax: Double
    /// mpps / the baseline's mpps (nil without a baseline, or when it is withheld).
    var ratio: Double?
    /// Why no ratio is given although there is a baseline (a generator-bound row on either side).
    var ratioWithheld: String?
    /// The generator backend, the median offered rate, and the runs that were generator-bound.
    var generator: String
    var offeredMpps: Double
    var generatorBoundRuns: Int
    /// Any run generator-bound: the row's Mpps is not the switch's limit and is not compared.
    var generatorBound: Bool
    var userNanosecondsPerPacket: Double
    var totalNanosecondsPerPacket: Double
    var allocationsPerPacket: Double?
    /// Median seconds to install the flow table (with --rules), nil otherwise.
    var flowLoadSeconds: Double?
    /// Median cycles per packet (all, user mode) where hardware counters were available.
    var cyclesPerPacket: Double?
    var userCyclesPerPacket: Double?
    /// Median user-space TSC cycles per packet (see RunResult) and the TSC's rate.
    var tscUserCyclesPerPacket: Double?
    var tscGigahertz: Double?
    var userCoreCyclesPerPacket: Double?
    var coreGigahertz: Double?
    /// The lowest run's user cycles per packet (TSC and core): the machine's noise only ever adds
    /// cycles (on the development VM the host doubles them in some minutes), so the low end of
    /// several runs is the switch's own cost.
    var tscUserCyclesPerPacketMin: Double?
    var userCoreCyclesPerPacketMin: Double?
    /// vswift-xdp only: median share of the window's frames forwarded by a cache entry in XDP.
    var xdpHitShare: Double?

    enum CodingKeys: String, CodingKey {
        case xdpHitShare
        case scenario, switchName = "switch", runs, contendedRuns, mpps, mppsMin, mppsMax, ratio, ratioWithheld
        case generator, offeredMpps, generatorBoundRuns, generatorBound
        case userNanosecondsPerPacket = "userNsPerPacket", totalNanosecondsPerPacket = "totalNsPerPacket"
        case allocationsPerPacket, flowLoadSeconds, cyclesPerPacket, userCyclesPerPacket, tscUserCyclesPerPacket, tscGigahertz
        case userCoreCyclesPerPacket, coreGigahertz, tscUserCyclesPerPacketMin, userCoreCyclesPerPacketMin
    }

    /// Ratios against `reference`'s Mpps, withheld where either row is generator-bound: then
    /// neither rate is a switch's limit, and per-packet costs are the comparison.
    static func compare(_ summaries: inout [Summary], against reference: String) {
        guard let base = summaries.first(where: { $0.switchName == reference }), base.mpps > 0 else { return }
        for i in summaries.indices {
            if summaries[i].generatorBound || base.generatorBound {
                summaries[i].ratio = nil
                summaries[i].ratioWithheld = "generator-bound"
            } else {
                summaries[i].ratio = summaries[i].mpps / base.mpps
            }
        }
    }

    init(results: [RunResult]) {
        scenario = results[0].scenario
        switchName = results[0].switchName
        runs = results.count
        contendedRuns = results.filter(\.contended).count
        mpps = Statistics.median(results.map(\.mpps))
        mppsMin = results.map(\.mpps).min() ?? 0
        mppsMax = results.map(\.mpps).max() ?? 0
        generator = results[0].generator
        offeredMpps = Statistics.median(results.map(\.offeredMpps))
        generatorBoundRuns = results.filter(\.generatorBound).count
        generatorBound = generatorBoundRuns > 0
        userNanosecondsPerPacket = Statistics.median(results.map(\.userNanosecondsPerPacket))
        totalNanosecondsPerPacket = Statistics.median(results.map(\.totalNanosecondsPerPacket))
        let allocations = results.compactMap(\.allocationsPerPacket)
        allocationsPerPacket = allocations.isEmpty ? nil : Statistics.median(allocations)
        let loads = results.compactMap(\.flowLoadSeconds)
        flowLoadSeconds = loads.isEmpty ? nil : Statistics.median(loads)
        let cycles = results.compactMap(\.cyclesPerPacket), userCycles = results.compactMap(\.userCyclesPerPacket)
        cyclesPerPacket = cycles.isEmpty ? nil : Statistics.median(cycles)
        userCyclesPerPacket = userCycles.isEmpty ? nil : Statistics.median(userCycles)
        let tsc = results.compactMap(\.tscUserCyclesPerPacket), rates = results.compactMap(\.tscGigahertz)
        tscUserCyclesPerPacket = tsc.isEmpty ? nil : Statistics.median(tsc)
        tscUserCyclesPerPacketMin = tsc.min()
        tscGigahertz = rates.isEmpty ? nil : Statistics.median(rates)
        let core = results.compactMap(\.userCoreCyclesPerPacket), clocks = results.compactMap(\.coreGigahertz)
        userCoreCyclesPerPacket = core.isEmpty ? nil : Statistics.median(core)
        userCoreCyclesPerPacketMin = core.min()
        coreGigahertz = clocks.isEmpty ? nil : Statistics.median(clocks)
        let shares = results.compactMap { $0.xdpPath?.hitShare }
        xdpHitShare = shares.isEmpty ? nil : Statistics.median(shares)
    }
}

struct MachineInfo: Codable {
    var cpus: Int
    var model: String
    var kernel: String

    static func current() -> MachineInfo {
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var model = "unknown"
        if let cpuinfo = readTextFile("/proc/cpuinfo"),
           let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let kernel = readTextFile("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        return MachineInfo(cpus: cpus, model: model, kernel: kernel)
    }
}

struct BenchOptions: Codable {
    var windowSeconds: Double
    var warmupSeconds: Double
    var ovsWarmupSeconds: Double
    var frameSize: Int
    /// One entry per scenario measured (forward: one; sweep: one per point).
    var scenarios: [ScenarioOptions]
    var switchCPU: Int
    var generatorCPU: Int
    /// The generator backend used (GeneratorBackend's raw value).
    var generator: String
    var runs: Int
    var baseline: Bool
    /// Whether Open vSwitch (AF_XDP ports) was measured.
    var ovs: Bool
    /// vswift's XDP flow cache rows (XDPCacheChoice) and where s0's receive path ran (ReceiveCPU).
    var xdpCache: String?
    var receiveCPU: String?
}

struct ScenarioOptions: Codable {
    var scenario: String
    var flows: Int
    var rules: Int
    var tunnel: String
}

/// What identifies an invocation: how it was started, when, and from which source.
struct InvocationInfo: Codable {
    var commandLine: String
    /// UTC, ISO 8601.
    var date: String
    /// `git rev-parse HEAD` of the checkout the bench was built in ("-dirty" with uncommitted changes), or "unknown".
    var commit: String

    static func current() -> InvocationInfo {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return InvocationInfo(
            commandLine: CommandLine.arguments.map(shellQuoted).joined(separator: " "),
            date: formatter.string(from: Date()), commit: sourceCommit())
    }

    /// The commit of the repository the executable was built in (.build/CONFIG/ is inside it).
    static func sourceCommit() -> String {
        let git = systemTool("git")
        let directory = executableDirectory()
        guard let head = try? runCommand([git, "-C", directory, "rev-parse", "HEAD"]) else { return "unknown" }
        let status = (try? runCommand([git, "-C", directory, "status", "--porcelain", "--untracked-files=no"])) ?? ""
        let commit = head.trimmingCharacters(in: .whitespacesAndNewlines)
        return status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? commit : commit + "-dirty"
    }
}

/// An argument as a shell would need it to be typed (single quotes when it holds anything special).
func shellQuoted(_ argument: String) -> String {
    let plain = argument.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    if plain && !argument.isEmpty { return argument }
    return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

struct BenchReport: Codable {
    var invocation: InvocationInfo
    var machine: MachineInfo
    var options: BenchOptions
    var allocationCounting: String
    var summary: [Summary]
    var runs: [RunResult]
}

/// The cycle columns, shown (in the text table and the Markdown report alike) only when some
/// switch measured them.
struct CycleColumn: Sendable {
    let text: String
    let markdown: String
    let value: @Sendable (Summary) -> Double?
    let format: String
    /// The lowest run's value: shown only when some switch had several runs.
    var isLowEnd = false

    static let all = [
        CycleColumn(text: "user TSC cyc/pkt", markdown: "user TSC cycles/pkt", value: { $0.tscUserCyclesPerPacket }, format: "%.1f"),
        CycleColumn(text: "≈ core cyc/pkt", markdown: "≈ user core cycles/pkt", value: { $0.userCoreCyclesPerPacket }, format: "%.0f"),
        CycleColumn(text: "min TSC", markdown: "lowest run: user TSC cycles/pkt", value: { $0.tscUserCyclesPerPacketMin },
                    format: "%.1f", isLowEnd: true),
        CycleColumn(text: "min ≈ core", markdown: "lowest run: ≈ user core cycles/pkt", value: { $0.userCoreCyclesPerPacketMin },
                    format: "%.0f", isLowEnd: true),
        CycleColumn(text: "user cyc/pkt", markdown: "user cycles/pkt", value: { $0.userCyclesPerPacket }, format: "%.0f"),
        CycleColumn(text: "cyc/pkt", markdown: "cycles/pkt", value: { $0.cyclesPerPacket }, format: "%.0f"),
    ]

    static func shown(in summaries: [Summary]) -> [CycleColumn] {
        let severalRuns = summaries.contains { $0.runs > 1 }
        return all.filter { column in
            (severalRuns || !column.isLowEnd) && summaries.contains { column.value($0) != nil }
        }
    }

    func cell(_ s: Summary, missing: String) -> String {
        value(s).map { String(format: format, $0) } ?? missing
    }
}

enum Table {
    static func render(summaries: [Summary], showRange: Bool) -> String {
        var header = ["scenario", "switch", "Mpps"]
        if showRange { header.append("Mpps range") }
        header += ["offered", "ratio", "user ns/pkt", "total ns/pkt", "allocs/pkt"]
        let cycles = CycleColumn.shown(in: summaries)
        header += cycles.map(\.text)
        var rows = [header]
        for s in summaries {
            var row = [s.scenario, s.switchName, String(format: "%.3f", s.mpps)]
            if showRange { row.append(String(format: "%.3f-%.3f", s.mppsMin, s.mppsMax)) }
            row.append(String(format: "%.3f", s.offeredMpps) + (s.generatorBound ? " gen-bound" : ""))
            row.append(s.ratio.map { String(format: "%.2f", $0) } ?? (s.ratioWithheld != nil ? "n/c" : "-"))
            row.append(String(format: "%.1f", s.userNanosecondsPerPacket))
            row.append(String(format: "%.0f", s.totalNanosecondsPerPacket))
            row.append(s.allocationsPerPacket.map { String(format: "%.3f", $0) } ?? "-")
            row += cycles.map { $0.cell(s, missing: "-") }
            rows.append(row)
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }
}
