import Foundation
import Glibc

/// One forwarding scenario (frame size, flows, rules, tunnel) measured on a fresh topology:
/// vswift and whichever baselines apply, `runs` times each, alternating. Shared by `forward`
/// (one scenario) and `sweep` (one per point).
struct ForwardRun {
    let options: ForwardOptions
    var flows: Int
    var rules: Int
    var tunnel: TunnelScenario
    /// With the encap scenario: a `vswift-map-N` row per count (encap through the map-cache).
    var mapPrefixes: [Int] = []

    /// What a scenario produced: the rows of the table and every run behind them.
    struct Outcome {
        var scenario: String
        var summaries: [Summary]
        var results: [RunResult]
        /// Notes that concern the scenario rather than a run (a baseline skipped or dropped).
        var notes: [String]
        var flows: Int
        var rules: Int
        var tunnel: TunnelScenario
        var baseline: Bool
        var ovs: Bool
        /// The backend that offered the traffic.
        var generator: GeneratorBackend
    }

    /// The order of the table's rows.
    static let switchOrder = ["vswift-xdp", "vswift", "vswift-p2p", "xsk_fwd", "ovs-afxdp", "ovs-vxlan", XDPCacheForward.ceilingLabel]

    var scenarioName: String {
        let kind = tunnel == .none ? "p2p" : "lisp-\(tunnel.rawValue)"
        return "\(kind)-\(options.size)B" + (flows > 1 ? "-\(flows)flows" : "") + (rules > 0 && tunnel == .none ? "-\(rules)rules" : "")
    }

    func measure() throws -> Outcome {
        let bpfDirectory = try Artifacts.bpfDirectory(explicit: options.bpfDirectory)
        let cpu = options.cpu, size = options.size, runs = options.runs
        var notes: [String] = []
        var baselinePath: String?
        if !options.skipBaseline && tunnel == .none {
            let path = options.baseline ?? executableDirectory() + "/xsk_fwd"
            guard access(path, X_OK) == 0 else {
                throw BenchError.failed("cannot find the baseline \(path): run scripts/build.sh, pass --baseline, or --skip-baseline")
            }
            baselinePath = path
        }
        // OVS: p2p (NORMAL or the same rules), and VXLAN in place of LISP in the tunnel scenarios.
        var measureOVS = false
        if !options.skipBaseline && !options.skipOvs {
            if OVSSwitch.isInstalled {
                measureOVS = true
            } else {
                notes.append("ovs-vswitchd is not installed (Debian: openvswitch-switch, or scripts/setup-bench.sh); the OVS baseline was skipped")
            }
        }
        if !mapPrefixes.isEmpty {
            notes.append("vswift-map-N: vswift encapsulating through the map-cache (lisp0 remote_ip=map, key=1) holding N static entries: "
                + "the destination 198.18.0.2/32 among a site-like mix (IPv4 and IPv6, four instance ids), or 198.18.0.0/15 alone for N = 1")
        }
        for note in notes { log("vswift-bench: note: \(note)") }
        let generatorCPU = options.resolvedGeneratorCPU
        let scenario = scenarioName

        Signals.install()
        OVSSwitch.removeStale()
        Topology.removeStale()
        // The main thread and the helper threads it starts stay off the switch's CPU.
        try pinCurrentThread(to: generatorCPU)

        let topology = Topology(switches: tunnel == .roundtrip ? 2 : 1)
        var generator: TrafficGenerator?
        // OVS's decap run: the same inner frames in VXLAN instead of LISP, from a generator of its own.
        var vxlanGenerator: TrafficGenerator?
        var sink: Sink?
        defer {
            vxlanGenerator?.stop()
            generator?.stop()
            sink?.close()
            topology.destroy()
        }
        try topology.create()
        sink = try Sink(namespace: topology.sink, device: "k0", objectPath: "\(bpfDirectory)/\(Artifacts.sink)")
        // s0's receive path on the switch CPU (see ReceiveCPU).
        var receiveThreads: [ReceiveThread] = []
        if options.resolvedReceiveCPU == .switchCPU {
            receiveThreads.append(try ReceiveThread.pin(device: "s0", namespace: topology.switchNamespace, cpu: cpu))
            notes.append("receive: s0's NAPI threaded on the switch CPU \(cpu) (pid \(receiveThreads[0].pid), counted in every switch's CPU time); "
                + "k0's (the sink's XDP drop) runs in softirq where frames are sent into it: the switch CPU")
        }
        let p2pRule = options.xdpCache.measuresWith && rules == 0 && tunnel == .none
        if p2pRule {
            notes.append("the vswift rows run in_port=1,actions=output:2 (NORMAL is never cached); OVS runs NORMAL")
        }
        if options.xdpCache.measuresWith && tunnel == .decap {
            notes.append("vswift-xdp, LISP decap: s0 is an underlay device; its program decapsulates in XDP "
                + "(decap entry for lisp0's remote) and the inner frame's megaflow entry outputs it")
        }
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
        let made = try TrafficGenerators.make(options.generator, GeneratorSetup(
            namespace: topology.generator, device: "g0", cpu: generatorCPU,
            objectPath: "\(bpfDirectory)/\(Artifacts.trafficgen)", frameSize: template?.count ?? size, flows: flows,
            destinationMAC: sink!.mac, template: template))
        generator = made.generator
        notes += made.notes
        let backend = made.generator.backend
        if tunnel == .decap && measureOVS {
            let s0 = try Threads.run(inNamespace: topology.switchNamespace) { try deviceIdentity("s0", namespace: topology.switchNamespace) }
            let vxlan = FrameTemplate.vxlan(
                inner: FrameTemplate.udp(size: size, source: generator!.sourceMAC, destination: sink!.mac),
                source: generator!.sourceMAC, destination: s0.mac,
                from: [198, 19, 1, 2], to: [198, 19, 1, 1])  // VSwiftSwitch.decapRemote → decapLocal
            // The same backend as vswift's frames, so the rows compare like with like.
            vxlanGenerator = try TrafficGenerators.make(backend, GeneratorSetup(
                namespace: topology.generator, device: "g0", cpu: generatorCPU,
                objectPath: "\(bpfDirectory)/\(Artifacts.trafficgen)", frameSize: vxlan.count, flows: flows,
                destinationMAC: sink!.mac, template: vxlan)).generator
        }

        let path = tunnel == .roundtrip
            ? "g0 -> s0 => switch A => u0 -> u1 => switch B => s1 -> k0; switches on CPU \(cpu) and \(options.resolvedSecondSwitchCPU)"
            : "g0 -> s0 => switch on CPU \(cpu) => s1 -> k0"
        log("vswift-bench: \(scenario): \(path); generator \(backend.rawValue) on CPU \(generatorCPU); "
            + "frames \(formatMACAddress(generator!.sourceMAC)) -> \(formatMACAddress(sink!.mac)); "
            + "warm-up \(options.warmup) s, window \(options.window) s, \(runs) run(s)")
        if !AllocationCounter.isAvailable {
            log("vswift-bench: allocation counting unavailable: \(AllocationCounter.unavailableReason)")
        }

        // The core clock against the TSC, on the switch CPU while it is idle (see CoreClock).
        let coreClock = CoreClock.measure(cpu: cpu)
        if let coreClock {
            log(String(format: "vswift-bench: CPU %d: core clock %.2f GHz, time-stamp counter %.2f GHz", cpu,
                       coreClock.coreGigahertz, coreClock.tscGigahertz))
        }
        var context = MeasurementContext(
            scenario: scenario, topology: topology, sink: sink!, generator: generator!, switchCPU: cpu,
            secondSwitchCPU: options.resolvedSecondSwitchCPU,
            bpfDirectory: bpfDirectory, rules: rules, tunnel: tunnel, baselinePath: baselinePath, generatorCPU: generatorCPU,
            warmup: options.warmup, window: options.window, ovsWarmup: options.resolvedOVSWarmup, ovsGenerator: vxlanGenerator)
        context.coreClock = coreClock
        context.p2pRule = p2pRule
        context.receiveThreads = receiveThreads
        context.xdpCacheSettle = options.xdpCacheSettle
        var results: [RunResult] = []
        for run in 1...runs {
            if options.xdpCache.measuresWithout || tunnel == .roundtrip {
                results.append(try context.measure(tunnel == .roundtrip ? .vswiftPair : .vswift, run: run))
            }
            if options.xdpCache.measuresWith && tunnel != .roundtrip { results.append(try context.measure(.vswiftCached, run: run)) }
            // A tunnel scenario is compared with vswift forwarding the same frames without it.
            if tunnel == .roundtrip { results.append(try context.measure(.vswiftPairPlain, run: run)) }
            if tunnel == .encap || tunnel == .decap { results.append(try context.measure(.vswiftPlain, run: run)) }
            if tunnel == .encap {
                for prefixes in mapPrefixes { results.append(try context.measure(.vswiftMap(prefixes: prefixes), run: run)) }
            }
            if baselinePath != nil { results.append(try context.measure(.baseline, run: run)) }
            if !receiveThreads.isEmpty && tunnel != .roundtrip { results.append(try context.measure(.generatorCeiling, run: run)) }
            if measureOVS {
                // OVS is an optional extra: if it cannot be set up or measured, the others still are.
                do {
                    results.append(try context.measure(tunnel == .roundtrip ? .ovsPair : .ovs, run: run))
                } catch BenchError.failed(let why) {
                    measureOVS = false
                    results.removeAll { $0.switchName.hasPrefix("ovs-") }
                    let note = "the OVS baseline failed in run \(run) and was dropped: \(why)"
                    notes.append(note)
                    log("vswift-bench: note: \(note)")
                }
            }
        }

        // vswift-xdp, vswift, vswift-p2p, then the map-cache rows, then the baselines.
        let order = Array(Self.switchOrder.prefix(3)) + mapPrefixes.map(ForwardMapCache.label) + Array(Self.switchOrder.dropFirst(3))
        var summaries = order.compactMap { name -> Summary? in
            let mine = results.filter { $0.switchName == name }
            return mine.isEmpty ? nil : Summary(results: mine)
        }
        let reference = tunnel == .none ? "xsk_fwd" : "vswift-p2p"
        Summary.compare(&summaries, against: reference)
        for remark in [generator?.remark, vxlanGenerator?.remark].compactMap({ $0 }) { notes.append(remark) }
        notes += XDPCacheForward.ratioLines(summaries)
        return Outcome(scenario: scenario, summaries: summaries, results: results, notes: notes,
                       flows: flows, rules: rules, tunnel: tunnel, baseline: baselinePath != nil, ovs: measureOVS,
                       generator: backend)
    }
}
