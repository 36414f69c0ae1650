import ArgumentParser
import Foundation
import Glibc
import VSwiftDatapath

@main
enum Entry {
    static func main() {
        // A parent may have handed us a blocked signal mask (test runners do); the bench stops its
        // generator with SIGUSR1 and cleans up on SIGINT/SIGTERM, so those must get through.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        // Before anything else: may re-execute the bench with the malloc interposer preloaded.
        AllocationCounter.prepareProcess()
        VSwiftBench.main()
    }
}

struct VSwiftBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vswift-bench",
        abstract: "vswift's benchmarks: forwarding on veth (default), the in-memory pipeline, the classifier.",
        subcommands: [Forward.self, Pipeline.self, ClassifierBench.self],
        defaultSubcommand: Forward.self)
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Port-to-port forwarding rate on a veth topology: vswift, a minimal C AF_XDP forwarder and (if installed) Open vSwitch with AF_XDP ports, side by side.",
        discussion: """
            Builds three network namespaces (generator, switch, sink) joined by veth pairs g0-s0 and s1-k0,
            injects UDP frames into g0 with an XDP program run through BPF_PROG_RUN (live frames), lets the
            switch forward s0 -> s1, and counts what reaches k0 with an XDP program. Needs root and two CPUs.
            See bench/README.md for what each number means.
            """)

    @Option(help: "Measurement window per run, in seconds.")
    var seconds: Double = 5

    @Option(help: "Frame size in bytes as the switch sees it (Ethernet header included, no FCS), 60-1514.")
    var size: Int = 64

    @Option(help: "Distinct flows (UDP source ports) the generator cycles through.")
    var flows: Int = 1

    @Option(help: "vswift runs an OpenFlow table of this many rules (one per generator flow, two subtables) instead of NORMAL; 0 = NORMAL.")
    var rules: Int = 0

    @Option(help: "CPU the switch's forwarding thread is pinned to.")
    var cpu: Int = 1

    @Option(name: .customLong("generator-cpu"), help: "CPU of the generator (default: the first CPU other than --cpu).")
    var generatorCPU: Int?

    @Option(help: "Runs per switch (vswift and the baseline alternate); the table shows medians and the range.")
    var runs: Int = 1

    @Option(help: "Warm-up before each window, in seconds.")
    var warmup: Double = 1

    @Flag(help: "A 1-second window (for tests).")
    var quick = false

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(help: "LISP: vswift encapsulates what it forwards (s1 is an underlay device) or decapsulates what it receives (the generator sends LISP to s0, an underlay device). Implies --skip-baseline (the baselines are not set up for LISP).")
    var tunnel: TunnelScenario = .none

    @Flag(help: "Measure vswift only (neither xsk_fwd nor OVS).")
    var skipBaseline = false

    @Flag(help: "Do not measure Open vSwitch (measured only when ovs-vswitchd is installed).")
    var skipOvs = false

    @Option(name: .customLong("bpf-dir"), help: "Directory of the BPF objects (default: next to the executable, then .build/bpf).")
    var bpfDirectory: String?

    @Option(help: "Path of the xsk_fwd baseline (default: next to the executable).")
    var baseline: String?

    var window: Double { quick ? 1 : seconds }

    func validate() throws {
        guard seconds > 0, warmup >= 0 else { throw ValidationError("--seconds must be positive and --warmup not negative") }
        guard (FrameTemplate.minimumSize...FrameTemplate.maximumSize).contains(size) else {
            throw ValidationError("--size must be \(FrameTemplate.minimumSize)...\(FrameTemplate.maximumSize)")
        }
        guard (1...60_000).contains(flows) else { throw ValidationError("--flows must be 1...60000") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard cpus >= 2 else { throw ValidationError("the bench needs two CPUs: one for the switch, one for the generator") }
        guard (0..<cpus).contains(cpu) else { throw ValidationError("--cpu must be 0...\(cpus - 1)") }
        if let generatorCPU {
            guard (0..<cpus).contains(generatorCPU), generatorCPU != cpu else {
                throw ValidationError("--generator-cpu must be 0...\(cpus - 1) and differ from --cpu")
            }
        }
    }

    mutating func run() throws {
        guard geteuid() == 0 else {
            throw BenchError.failed("vswift-bench needs root (network namespaces, XDP, AF_XDP)")
        }
        do {
            try benchmark()
        } catch BenchError.interrupted {
            FileHandle.standardError.write(Data("vswift-bench: interrupted; topology removed\n".utf8))
            throw ExitCode(130)
        }
    }

    private func benchmark() throws {
        let bpfDirectory = try Artifacts.bpfDirectory(explicit: self.bpfDirectory)
        var baselinePath: String?
        if !skipBaseline && tunnel == .none {
            let path = baseline ?? executableDirectory() + "/xsk_fwd"
            guard access(path, X_OK) == 0 else {
                throw BenchError.failed("cannot find the baseline \(path): run scripts/build.sh, pass --baseline, or --skip-baseline")
            }
            baselinePath = path
        }
        var measureOVS = false
        var skipped: String?
        if !skipBaseline && !skipOvs && tunnel == .none {
            if OVSSwitch.isInstalled {
                measureOVS = true
            } else {
                skipped = "ovs-vswitchd is not installed (Debian: openvswitch-switch); the OVS baseline was skipped"
                log("vswift-bench: note: \(skipped!)")
            }
        }
        let generatorCPU = self.generatorCPU ?? (0..<Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))).first { $0 != cpu }!
        let machine = MachineInfo.current()
        let kind = tunnel == .none ? "p2p" : "lisp-\(tunnel.rawValue)"
        let scenario = "\(kind)-\(size)B" + (flows > 1 ? "-\(flows)flows" : "") + (rules > 0 && tunnel == .none ? "-\(rules)rules" : "")

        Signals.install()
        OVSSwitch.removeStale()
        Topology.removeStale()
        // The main thread and the helper threads it starts stay off the switch's CPU.
        try pinCurrentThread(to: generatorCPU)

        let topology = Topology()
        var generator: Generator?
        var sink: Sink?
        defer {
            generator?.stop()
            sink?.close()
            topology.destroy()
        }
        try topology.create()
        sink = try Sink(namespace: topology.sink, device: "k0", objectPath: "\(bpfDirectory)/\(Artifacts.sink)")
        var template: [UInt8]?
        if tunnel == .decap {
            // LISP from the far RLOC to s0's address, around the usual UDP frame (size = inner size).
            let s0 = try Threads.run(inNamespace: topology.switchNamespace) { try deviceIdentity("s0", namespace: topology.switchNamespace) }
            let g0 = try Threads.run(inNamespace: topology.generator) { try deviceIdentity("g0", namespace: topology.generator) }
            template = FrameTemplate.lisp(
                inner: FrameTemplate.udp(size: size, source: g0.mac, destination: sink!.mac),
                source: g0.mac, destination: s0.mac,
                from: VSwiftSwitch.decapRemote, to: VSwiftSwitch.decapLocal)
        }
        generator = try Generator(
            namespace: topology.generator, device: "g0", cpu: generatorCPU,
            objectPath: "\(bpfDirectory)/\(Artifacts.trafficgen)", frameSize: template?.count ?? size, flows: flows,
            destinationMAC: sink!.mac, template: template)

        log("vswift-bench: \(scenario): g0 -> s0 => switch on CPU \(cpu) => s1 -> k0; generator on CPU \(generatorCPU); "
            + "frames \(formatMACAddress(generator!.sourceMAC)) -> \(formatMACAddress(sink!.mac)); "
            + "warm-up \(warmup) s, window \(window) s, \(runs) run(s)")
        if !AllocationCounter.isAvailable {
            log("vswift-bench: allocation counting unavailable: \(AllocationCounter.unavailableReason)")
        }

        let context = MeasurementContext(
            scenario: scenario, topology: topology, sink: sink!, generator: generator!, switchCPU: cpu,
            bpfDirectory: bpfDirectory, rules: rules, tunnel: tunnel, baselinePath: baselinePath, generatorCPU: generatorCPU,
            warmup: warmup, window: window)
        var results: [RunResult] = []
        for run in 1...runs {
            results.append(try context.measure(.vswift, run: run))
            // A tunnel scenario is compared with vswift forwarding the same frames without it.
            if tunnel != .none { results.append(try context.measure(.vswiftPlain, run: run)) }
            if baselinePath != nil { results.append(try context.measure(.baseline, run: run)) }
            if measureOVS {
                // OVS is an optional extra: if it cannot be set up or measured, the others still are.
                do {
                    results.append(try context.measure(.ovs, run: run))
                } catch BenchError.failed(let why) {
                    measureOVS = false
                    results.removeAll { $0.switchName == "ovs-afxdp" }
                    skipped = "the OVS baseline failed in run \(run) and was dropped: \(why)"
                    log("vswift-bench: note: \(skipped!)")
                }
            }
        }

        var summaries = ["vswift", "vswift-p2p", "xsk_fwd", "ovs-afxdp"].compactMap { name -> Summary? in
            let mine = results.filter { $0.switchName == name }
            return mine.isEmpty ? nil : Summary(results: mine)
        }
        let reference = tunnel == .none ? "xsk_fwd" : "vswift-p2p"
        if let base = summaries.first(where: { $0.switchName == reference }), base.mpps > 0 {
            for i in summaries.indices { summaries[i].ratio = summaries[i].mpps / base.mpps }
        }

        print("machine: \(machine.cpus) CPUs, \(machine.model); kernel \(machine.kernel)")
        print("frames: \(size) bytes, \(flows) flow(s); window \(window) s after \(warmup) s warm-up; \(runs) run(s) each, medians shown")
        print("")
        print(Table.render(summaries: summaries, showRange: runs > 1))
        let contended = results.filter(\.contended).count
        if contended > 0 {
            print("")
            print("warning: in \(contended) of \(results.count) runs another process took CPU time from the forwarding thread; those numbers are low (see notes)")
        }
        let notes = results.flatMap { r in r.notes.map { "\(r.switchName) run \(r.run): \($0)" } } + (skipped.map { [$0] } ?? [])
        if !notes.isEmpty {
            print("")
            for note in notes { print("note: \(note)") }
        }

        if let json {
            let report = BenchReport(
                machine: machine,
                options: BenchOptions(
                    windowSeconds: window, warmupSeconds: warmup, frameSize: size, flows: flows, switchCPU: cpu,
                    generatorCPU: generatorCPU, runs: runs, baseline: baselinePath != nil, ovs: measureOVS),
                allocationCounting: AllocationCounter.isAvailable ? "malloc-interposer (worker threads)" : "unavailable: \(AllocationCounter.unavailableReason)",
                summary: summaries, runs: results)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            guard FileManager.default.createFile(atPath: json, contents: data + Data("\n".utf8)) else {
                throw BenchError.failed("cannot write \(json)")
            }
        }
    }
}

enum TunnelScenario: String, ExpressibleByArgument, CaseIterable {
    case none, encap, decap
}

/// Progress and diagnostics go to stderr; the table to stdout.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
