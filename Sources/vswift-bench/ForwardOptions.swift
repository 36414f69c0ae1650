import ArgumentParser
import Glibc

/// The options `forward` and `sweep` share: frames, CPUs, windows, which switches, outputs.
struct ForwardOptions: ParsableArguments {
    @Option(help: "Measurement window per run, in seconds.")
    var seconds: Double = 5

    @Option(help: "Frame size in bytes as the switch sees it (Ethernet header included, no FCS), 60-1514.")
    var size: Int = 64

    @Option(help: "CPU the switch's forwarding thread is pinned to.")
    var cpu: Int = 1

    @Option(name: .customLong("second-switch-cpu"), help: "CPU of switch B in the round trip (default: --cpu, which it then shares with switch A).")
    var secondSwitchCPU: Int?

    var resolvedSecondSwitchCPU: Int { secondSwitchCPU ?? cpu }

    @Option(name: .customLong("generator-cpu"), help: "CPU of the generator (default: the first CPU that no switch uses).")
    var generatorCPU: Int?

    @Option(help: "Traffic generator: auto (the first that works of live, loop), live (BPF_PROG_RUN live frames), loop (an XDP clone loop on a veth pair; for kernels that refuse live frames).")
    var generator: GeneratorBackend = .auto

    @Option(name: .customLong("xdp-cache"), help: "vswift's XDP flow cache: off (the AF_XDP path only, as vswiftd's default), on (row vswift-xdp), or both (rows vswift and vswift-xdp in the same run, with their ratios). With the cache, the p2p scenario runs the rule in_port=1,actions=output:2 instead of NORMAL (NORMAL is never cached).")
    var xdpCache: XDPCacheChoice = .off

    @Option(name: .customLong("xdp-cache-settle"), help: "With the XDP cache: after the warm-up, wait until its entry count stops growing (at most this many seconds, 0: no wait), so the window measures the steady state; the entries and hit share are printed.")
    var xdpCacheSettle: Double = 30

    @Option(name: .customLong("receive-cpu"), help: "Where s0's receive path (its NAPI: the switch's XDP program, the copy into AF_XDP) runs: generator (softirq on the generator's CPU, the bench's default until issue 17), switch (a threaded NAPI pinned to the switch CPU; the sink's NAPI then runs on the generator CPU), auto (switch with --xdp-cache on or both).")
    var receiveCPU: ReceiveCPU = .auto

    var resolvedReceiveCPU: ReceiveCPU {
        receiveCPU != .auto ? receiveCPU : (xdpCache == .off ? .generatorCPU : .switchCPU)
    }

    @Option(help: "Runs per switch (the switches alternate); the table shows medians and the range.")
    var runs: Int = 1

    @Option(help: "Warm-up before each window, in seconds.")
    var warmup: Double = 1

    @Option(name: .customLong("ovs-warmup"), help: "Warm-up before OVS's windows (default: --warmup). With tens of thousands of flows OVS needs tens of seconds to install their megaflows.")
    var ovsWarmup: Double?

    var resolvedOVSWarmup: Double { ovsWarmup ?? warmup }

    @Flag(help: "A 1-second window (for tests).")
    var quick = false

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(help: "Write a Markdown report (command line, machine, commit, table, notes) to this file (default with --json: the JSON path with .md).")
    var markdown: String?

    @Flag(help: "Measure vswift only (neither xsk_fwd nor OVS).")
    var skipBaseline = false

    @Flag(help: "Do not measure Open vSwitch (measured only when ovs-vswitchd is installed).")
    var skipOvs = false

    @Option(name: .customLong("bpf-dir"), help: "Directory of the BPF objects (default: next to the executable, then .build/bpf).")
    var bpfDirectory: String?

    @Option(help: "Path of the xsk_fwd baseline (default: next to the executable).")
    var baseline: String?

    var window: Double { quick ? 1 : seconds }

    /// Where the Markdown report goes: --markdown, else next to --json.
    var markdownPath: String? {
        if let markdown { return markdown }
        guard let json else { return nil }
        return (json.hasSuffix(".json") ? String(json.dropLast(5)) : json) + ".md"
    }

    /// An output file must be writable where it is named, checked before minutes of measuring.
    static func validateOutput(_ path: String) throws {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        guard access(directory.isEmpty ? "/" : directory, W_OK) == 0 else {
            throw ValidationError("cannot write \(path): \(directory) is not a writable directory")
        }
    }

    static var onlineCPUs: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// --generator-cpu, else the first CPU neither switch uses (else the first other than --cpu).
    var resolvedGeneratorCPU: Int {
        generatorCPU ?? (0..<Self.onlineCPUs).first { $0 != cpu && $0 != secondSwitchCPU }
            ?? (0..<Self.onlineCPUs).first { $0 != cpu } ?? 0
    }

    func validate() throws {
        guard seconds > 0, warmup >= 0, (ovsWarmup ?? 0) >= 0, xdpCacheSettle >= 0 else {
            throw ValidationError("--seconds must be positive and --warmup, --ovs-warmup, --xdp-cache-settle not negative")
        }
        guard (FrameTemplate.minimumSize...FrameTemplate.maximumSize).contains(size) else {
            throw ValidationError("--size must be \(FrameTemplate.minimumSize)...\(FrameTemplate.maximumSize)")
        }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let markdown, let json, markdown == json { throw ValidationError("--markdown and --json must be different files") }
        for path in [json, markdown].compactMap({ $0 }) { try Self.validateOutput(path) }
        let cpus = Self.onlineCPUs
        guard cpus >= 2 else { throw ValidationError("the bench needs two CPUs: one for the switch, one for the generator") }
        guard (0..<cpus).contains(cpu) else { throw ValidationError("--cpu must be 0...\(cpus - 1)") }
        if let secondSwitchCPU {
            guard (0..<cpus).contains(secondSwitchCPU), secondSwitchCPU != resolvedGeneratorCPU else {
                throw ValidationError("--second-switch-cpu must be 0...\(cpus - 1) and differ from the generator's CPU")
            }
        }
        if let generatorCPU {
            guard (0..<cpus).contains(generatorCPU), generatorCPU != cpu else {
                throw ValidationError("--generator-cpu must be 0...\(cpus - 1) and differ from --cpu")
            }
        }
    }
}

/// Which vswift rows `forward` measures: without the XDP flow cache, with it, or both.
enum XDPCacheChoice: String, ExpressibleByArgument, CaseIterable, Codable {
    case off, on, both

    var measuresWithout: Bool { self != .on }
    var measuresWith: Bool { self != .off }
}
