import Foundation
import CSupport
import Glibc
import VSwiftDatapath

enum SwitchKind: Equatable {
    case vswift
    /// vswift with its XDP flow cache on (`--xdp-cache`): established flows forwarded in XDP.
    case vswiftCached
    /// The generator's own ceiling: s0 drops every frame in XDP (the sink's program), counted there.
    case generatorCeiling
    /// Encap through the map-cache (remote_ip=map) with this many static entries (ForwardMapCache).
    case vswiftMap(prefixes: Int)
    /// Tunnel scenarios' reference: vswift forwarding the same frames port to port (one rule).
    case vswiftPlain
    case baseline
    /// Open vSwitch's userspace datapath with AF_XDP ports (OVSSwitch); VXLAN in tunnel scenarios.
    case ovs
    /// The round trip: two vswift switches, A encapsulating in LISP, B decapsulating (VSwiftPair).
    case vswiftPair
    /// The round trip's reference: the same two switches port to port, without tunnels.
    case vswiftPairPlain
    /// The round trip through two OVS instances, in VXLAN (OVSPair).
    case ovsPair
}

/// Counters read at the edges of a window.
private struct Snapshot {
    var time: Double
    var sinkPackets: UInt64
    var sinkBytes: UInt64
    var generated: UInt64
    var cpu: ThreadCPUTime
    /// The CPU each measured thread last ran on.
    var lastCPUs: [Int]
    var s0: PortStatistics?
    var s1: PortStatistics?
    /// The time-stamp counter at `time`, and the vswift workers' cycle accounting (summed over
    /// every datapath measured).
    var tsc: UInt64
    var workerCycles: WorkerCycles?

    static func take(sink: Sink, generator: TrafficGenerator, threads measured: [(pid: Int32, tid: Int32)], datapath: Datapath?,
                     cycleSources: [Datapath]) -> Snapshot {
        let counters = sink.counters()
        let threads = measured.compactMap { ThreadCPUTime.read(pid: $0.pid, tid: $0.tid) }
        let cpu = threads.reduce(ThreadCPUTime(), +)
        let generated = generator.framesGenerated
        let time = monotonicSeconds()
        let tsc = vs_rdtsc()
        let workerCycles = cycleSources.isEmpty ? nil : cycleSources.flatMap { $0.workerStatistics().map(\.cycles) }.reduce(WorkerCycles(), +)
        return Snapshot(
            time: time, sinkPackets: counters.packets, sinkBytes: counters.bytes, generated: generated, cpu: cpu,
            lastCPUs: threads.map(\.lastCPU),
            s0: datapath?.statistics(port: "s0"), s1: datapath?.statistics(port: "s1"), tsc: tsc, workerCycles: workerCycles)
    }
}

/// What every run shares: the topology, generator and sink, and the options.
struct MeasurementContext {
    let scenario: String
    let topology: Topology
    let sink: Sink
    let generator: TrafficGenerator
    let switchCPU: Int
    /// Switch B's CPU in the round trip (the same as switchCPU unless --second-switch-cpu).
    var secondSwitchCPU: Int
    let bpfDirectory: String
    /// 0: NORMAL (no flow table); otherwise vswift runs this many OpenFlow rules (see VSwiftSwitch).
    var rules: Int = 0
    /// vswift only: the traffic is encapsulated (s1 is an underlay) or decapsulated (s0 is one).
    var tunnel: TunnelScenario = .none
    let baselinePath: String?
    /// The switch CPU's core clock against the TSC, to state TSC cycles in core cycles.
    var coreClock: CoreClock?
    /// CPU of the generator, where OVS's non-PMD threads are put.
    var generatorCPU: Int = 0
    let warmup: Double
    let window: Double
    /// OVS's warm-up (its megaflow cache fills slowly with many flows).
    var ovsWarmup: Double
    /// The generator of OVS's runs when they need other frames (VXLAN for decap); nil: `generator`.
    var ovsGenerator: TrafficGenerator?
    /// The vswift rows run in_port=1,actions=output:2 instead of NORMAL (p2p with the XDP cache).
    var p2pRule = false
    /// s0's threaded NAPI (`--receive-cpu switch`): measured with every switch, checked every run.
    var receiveThreads: [ReceiveThread] = []
    /// vswift-xdp: the most seconds to wait after the warm-up for the cache to stop growing.
    var xdpCacheSettle: Double = 0

    /// Starts the switch, offers traffic, measures one window, stops everything again.
    func measure(_ kind: SwitchKind, run: Int) throws -> RunResult {
        let label = switch kind {
        case .vswift, .vswiftPair: "vswift"
        case .vswiftCached: "vswift-xdp"
        case .generatorCeiling: XDPCacheForward.ceilingLabel
        case .vswiftMap(let prefixes): ForwardMapCache.label(prefixes)
        case .vswiftPlain, .vswiftPairPlain: "vswift-p2p"
        case .baseline: "xsk_fwd"
        case .ovs: tunnel == .none ? "ovs-afxdp" : "ovs-vxlan"
        case .ovsPair: "ovs-vxlan"
        }
        log("run \(run) \(label): starting")
        let generator = kind == .ovs ? ovsGenerator ?? self.generator : self.generator
        let sw: SwitchUnderTest
        var vswift: VSwiftSwitch?
        var ovs: OVSSwitch?
        var pair: VSwiftPair?
        var ovsPair: OVSPair?
        var dropper: DropSwitch?
        switch kind {
        case .vswift, .vswiftCached:
            let v = try VSwiftSwitch(
                namespace: topology.switchNamespace, cpu: switchCPU, bpfDirectory: bpfDirectory, rules: rules,
                tunnel: tunnel, sinkMAC: sink.mac, xdpCache: kind == .vswiftCached, p2pRule: p2pRule)
            vswift = v
            sw = v
        case .generatorCeiling:
            let d = try DropSwitch(topology: topology, bpfDirectory: bpfDirectory, receiveThreads: receiveThreads)
            dropper = d
            sw = d
        case .vswiftMap(let prefixes):
            let v = try VSwiftSwitch(
                namespace: topology.switchNamespace, cpu: switchCPU, bpfDirectory: bpfDirectory, tunnel: .encap,
                sinkMAC: sink.mac, mapPrefixes: prefixes)
            vswift = v
            sw = v
        case .vswiftPlain:
            let v = try VSwiftSwitch(
                namespace: topology.switchNamespace, cpu: switchCPU, bpfDirectory: bpfDirectory, rules: max(rules, 1))
            vswift = v
            sw = v
        case .baseline:
            sw = try BaselineSwitch(
                namespace: topology.switchNamespace, cpu: switchCPU, executable: baselinePath!,
                redirectObject: "\(bpfDirectory)/\(Artifacts.redirect)")
        case .ovs:
            let o = try OVSSwitch(namespace: topology.switchNamespace, cpu: switchCPU, helperCPU: generatorCPU, rules: rules,
                                  vxlan: VXLANLeg.forScenario(tunnel, sinkMAC: sink.mac))
            ovs = o
            sw = o
        case .ovsPair:
            let o = try OVSPair(topology: topology, cpu: switchCPU, secondCPU: secondSwitchCPU, helperCPU: generatorCPU)
            ovsPair = o
            sw = o
        case .vswiftPair, .vswiftPairPlain:
            let p = try VSwiftPair(topology: topology, cpu: switchCPU, secondCPU: secondSwitchCPU, bpfDirectory: bpfDirectory,
                                   lisp: kind == .vswiftPair)
            pair = p
            sw = p
        }
        // The switch's own count of frames sent toward the sink (on s1: an underlay too).
        func transmittedToSink() -> UInt64 {
            vswift?.datapath.statistics(port: "s1")?.txPackets ?? ovs?.transmitted() ?? pair?.transmittedToSink
                ?? ovsPair?.transmitted() ?? 0
        }
        var stopped = false
        func stopAll() {
            guard !stopped else { return }
            stopped = true
            generator.pause()
            sw.stop()
        }
        defer {
            if AllocationCounter.isAvailable { _ = AllocationCounter.end() }
            stopAll()
        }

        for thread in receiveThreads where !thread.isInPlace {
            throw BenchError.failed("\(label): napi/\(thread.device) (pid \(thread.pid)) is gone or off CPU \(thread.cpu): the switch changed the device's NAPI")
        }
        // The frames counted: at the sink, or where the ceiling row drops them (s0).
        let counting = dropper?.counter ?? sink
        if let vswift, (tunnel == .none && !p2pRule) || kind == .vswiftPlain { try vswift.learn(from: sink) }
        if let ovs, rules == 0 && tunnel == .none { try ovs.learn(from: sink) }
        let sinkAtStart = counting.counters().packets
        let switchTxAtStart = transmittedToSink()
        generator.start()
        var firstPackets: XDPCacheForward.FirstPackets?
        var settle: XDPCacheSettle.Outcome?
        if kind == .vswiftCached, let datapath = vswift?.datapath {
            firstPackets = try XDPCacheForward.watchFirstPackets(datapath, sink: counting, within: warmup)
            let outcome = try XDPCacheSettle.wait(datapath, bound: xdpCacheSettle)
            settle = outcome
            log("run \(run) \(label): \(XDPCacheSettle.describe(outcome, warmup: warmup))")
        } else {
            try Signals.sleep(kind == .ovs || kind == .ovsPair ? ovsWarmup : warmup)
        }
        if let failure = generator.failure { throw BenchError.failed(failure) }

        let tids = sw.threadIDs
        guard !tids.isEmpty else { throw BenchError.failed("\(label) has no threads to measure") }
        // With s0's NAPI on the switch CPU its thread is part of every switch's cost.
        let measured = sw.measuredThreads + receiveThreads.filter { $0.cpu == switchCPU && !tids.contains($0.pid) }.map { ($0.pid, $0.pid) }
        let datapath = vswift?.datapath
        func upcalls() -> OVSUpcalls? { ovs?.upcalls() ?? ovsPair?.upcalls() }
        let upcallsAtStart = upcalls()
        var cycleCounters = CycleCounters.open(threads: sw.measuredThreads)
        let cyclesAtStart = try? cycleCounters.get().read()
        let cycleSources = [vswift?.datapath, pair?.first, pair?.second].compactMap { $0 }
        let a = Snapshot.take(sink: counting, generator: generator, threads: measured, datapath: datapath,
                              cycleSources: cycleSources)
        let countsAllocations = vswift != nil || pair != nil
        let pathAtStart = kind == .vswiftCached ? datapath.map(XDPCacheForward.PathSample.take) : nil
        if countsAllocations { AllocationCounter.begin(tracking: tids) }
        try Signals.sleep(window)
        let pathAtEnd = kind == .vswiftCached ? datapath.map(XDPCacheForward.PathSample.take) : nil
        let allocations = countsAllocations ? AllocationCounter.end() : nil
        let b = Snapshot.take(sink: counting, generator: generator, threads: measured, datapath: datapath,
                              cycleSources: cycleSources)
        let cyclesAtEnd = try? cycleCounters.get().read()
        if case .success(var counters) = cycleCounters {
            counters.close()
            cycleCounters = .success(counters)
        }
        let upcallsAtEnd = upcalls()
        if let failure = generator.failure { throw BenchError.failed(failure) }

        // Let the frames in flight arrive, then compare the switch's own count with the sink's.
        generator.pause()
        usleep(200_000)
        var notes: [String] = []
        let switchTxTotal = transmittedToSink() &- switchTxAtStart
        for datapath in [vswift?.datapath, pair?.first, pair?.second].compactMap({ $0 }) {
            for accounting in datapath.frameAccounting() where !accounting.isConsistent {
                notes.append("frame accounting inconsistent: \(accounting)")
            }
        }
        stopAll()
        let sinkTotal = counting.counters().packets &- sinkAtStart
        var baselineTSCCyclesPerPacket: Double?
        if let baseline = sw as? BaselineSwitch {
            // xsk_fwd prints its totals at exit: "xsk_fwd: s0->s1 N packets, ..." and
            // "xsk_fwd: tsc cycles busy N ...".
            if let range = baseline.log.range(of: "s0->s1 "),
               let forwarded = UInt64(baseline.log[range.upperBound...].prefix(while: \.isNumber)) {
                if let note = Self.disagreement("xsk_fwd sent", forwarded, sinkTotal) { notes.append(note) }
                if let busy = Self.number(after: "tsc cycles busy ", in: baseline.log), forwarded > 0 {
                    baselineTSCCyclesPerPacket = Double(busy) / Double(forwarded)
                }
            } else {
                notes.append("xsk_fwd printed no totals: \(baseline.log.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        } else if ovs != nil || ovsPair != nil {
            notes += ovs?.stopNotes ?? ovsPair?.stopNotes ?? []
            if let note = Self.disagreement("ovs sent on s1", switchTxTotal, sinkTotal) { notes.append(note) }
        } else if kind == .vswiftCached || kind == .generatorCeiling {
            // The cache's kernel-path counts are folded into the port counters once a second: the
            // path counts below account for the frames instead.
        } else if let note = Self.disagreement(pair != nil ? "vswift B sent on s1" : "vswift sent on s1", switchTxTotal, sinkTotal) {
            notes.append(note)
        }

        let elapsed = b.time - a.time
        let packets = b.sinkPackets &- a.sinkPackets
        guard packets > 0 else {
            throw BenchError.failed("\(label): the sink counted no packets in the window (generated \(b.generated &- a.generated))")
        }
        let cpu = CPUUsage(from: a.cpu, to: b.cpu)
        var result = RunResult(
            scenario: scenario, switchName: label, run: run, windowSeconds: elapsed, packets: packets,
            bytes: b.sinkBytes &- a.sinkBytes, mpps: Double(packets) / elapsed / 1e6,
            offeredMpps: Double(b.generated &- a.generated) / elapsed / 1e6, generator: generator.backend.rawValue,
            userNanosecondsPerPacket: cpu.userNanoseconds / Double(packets),
            totalNanosecondsPerPacket: cpu.totalNanoseconds / Double(packets),
            cpuUtilization: cpu.totalNanoseconds / (elapsed * 1e9),
            userTicks: cpu.userTicks, systemTicks: cpu.systemTicks,
            flowLoadSeconds: vswift?.flowLoadSeconds ?? ovs?.flowLoadSeconds, notes: notes)
        result.generatorBound = RunResult.isGeneratorBound(mpps: result.mpps, offeredMpps: result.offeredMpps)
        if let pathAtStart, let pathAtEnd {
            XDPCacheForward.record(&result, first: firstPackets, from: pathAtStart, to: pathAtEnd)
            if let settle { XDPCacheSettle.record(&result, settle, warmup: warmup) }
        }
        // Both switches busy-poll, and the generator offers more than they forward: a forwarding
        // thread that did not get its whole CPU was preempted by something else. (A switch pair's
        // threads on one CPU: their sum is what counts; on two CPUs, each should have its own.)
        let pairKinds: [SwitchKind] = [.vswiftPair, .vswiftPairPlain, .ovsPair]
        let switchCPUs = Set(pairKinds.contains(kind) ? [switchCPU, secondSwitchCPU] : [switchCPU])
        let cpuList = switchCPUs.sorted().map(String.init).joined(separator: " and ")
        if result.cpuUtilization < 0.9 * Double(switchCPUs.count) && result.offeredMpps > 1.1 * result.mpps {
            result.contended = true
            result.notes.append(String(
                format: "the forwarding thread(s) got only %.0f%% of CPU %@ while more was offered than forwarded: another process competed (see uptime); this run is not a clean measurement",
                result.cpuUtilization * 100, cpuList))
        }
        // A busy forwarding thread found off its CPU means the pinning did not happen.
        if cpu.totalNanoseconds > 0.5 * elapsed * 1e9, b.lastCPUs.contains(where: { !switchCPUs.contains($0) }) {
            result.notes.append("forwarding thread(s) last ran on CPU(s) \(b.lastCPUs), not only the switch CPU(s) \(cpuList)")
        }
        if cpu.userTicks + cpu.systemTicks > 0 && cpu.userTicks < 10 {
            result.notes.append("the user/system split rests on \(cpu.userTicks) user tick(s) of 10 ms (timer-tick sampling): user ns/pkt is coarse; a longer --seconds sharpens it")
        }
        let tscGigahertz = Double(b.tsc &- a.tsc) / elapsed / 1e9
        if let start = a.workerCycles, let end = b.workerCycles {
            result.tscUserCyclesPerPacket = Double((end - start).busy) / Double(packets)
        } else if let baselineTSCCyclesPerPacket {
            result.tscUserCyclesPerPacket = baselineTSCCyclesPerPacket
        }
        if let tsc = result.tscUserCyclesPerPacket {
            result.tscGigahertz = tscGigahertz
            if let coreClock {
                result.coreGigahertz = coreClock.coreGigahertz
                result.userCoreCyclesPerPacket = tsc * coreClock.ratio
            }
        }
        if let start = cyclesAtStart, let end = cyclesAtEnd {
            result.cyclesPerPacket = Double(end.all &- start.all) / Double(packets)
            result.userCyclesPerPacket = Double(end.user &- start.user) / Double(packets)
        } else if case .failure(let why) = cycleCounters, run == 1 {
            result.notes.append(why.description)
        }
        if let start = upcallsAtStart, let end = upcallsAtEnd {
            let succeeded = end.succeeded &- start.succeeded, failed = end.failed &- start.failed
            result.ovsUpcalls = succeeded
            result.ovsFailedUpcalls = failed
            if succeeded + failed > 100 && Double(succeeded + failed) > 0.01 * Double(packets) {
                // OVS starts its datapath flow limit at 10,000 and raises it by 1,000 per revalidation
                // round, so tens of thousands of flows need tens of seconds before they all have a megaflow.
                result.notes.append("ovs made \(succeeded + failed) upcalls in the window, \(failed) of them failed (dropped; "
                    + "usually the datapath flow limit, see ovs-appctl upcall/show): its megaflow cache was still filling; "
                    + "with tens of thousands of flows OVS needs an --ovs-warmup of tens of seconds for the steady state")
            }
        }
        if let allocations {
            result.workerAllocations = allocations.tracked
            result.processAllocations = allocations.process
            result.allocationsPerPacket = Double(allocations.tracked) / Double(packets)
        }
        if let s0a = a.s0, let s0b = b.s0, let s1a = a.s1, let s1b = b.s1 {
            result.switchRxPackets = s0b.rxPackets &- s0a.rxPackets
            result.switchTxPackets = s1b.txPackets &- s1a.txPackets
            result.switchRxDropped = s0b.rxDropped &- s0a.rxDropped
            if let x = s0a.xsk, let y = s0b.xsk {
                result.switchRxSocket = XSKStatistics(
                    rxDropped: y.rxDropped &- x.rxDropped, rxInvalidDescs: y.rxInvalidDescs &- x.rxInvalidDescs,
                    txInvalidDescs: y.txInvalidDescs &- x.txInvalidDescs, rxRingFull: y.rxRingFull &- x.rxRingFull,
                    rxFillRingEmptyDescs: y.rxFillRingEmptyDescs &- x.rxFillRingEmptyDescs,
                    txRingEmptyDescs: y.txRingEmptyDescs &- x.txRingEmptyDescs)
            }
        }
        if let seconds = result.flowLoadSeconds {
            log(String(format: "run %d %@: flow table of %d rules installed in %.2f s", run, label, rules, seconds))
        }
        log(String(format: "run %d %@: %.3f Mpps delivered (%.3f offered%@), CPU %.0f%%, user %.1f ns/pkt%@, total %.0f ns/pkt%@",
                   run, label, result.mpps, result.offeredMpps, result.generatorBound ? ", generator-bound" : "",
                   result.cpuUtilization * 100,
                   result.userNanosecondsPerPacket,
                   result.tscUserCyclesPerPacket.map { tsc in
                       String(format: " (%.1f TSC cycles%@)", tsc,
                              result.userCoreCyclesPerPacket.map { String(format: ", ≈ %.0f core cycles", $0) } ?? "")
                   } ?? "",
                   result.totalNanosecondsPerPacket,
                   result.allocationsPerPacket.map { String(format: ", %.3f allocs/pkt", $0) } ?? ""))
        for note in result.notes { log("  note: \(note)") }
        return result
    }

    /// The decimal number right after `prefix` in `text`.
    static func number(after prefix: String, in text: String) -> UInt64? {
        guard let range = text.range(of: prefix) else { return nil }
        return UInt64(text[range.upperBound...].prefix(while: \.isNumber))
    }

    /// A note when two packet counts of the same traffic differ by more than 1% (and 100 packets).
    static func disagreement(_ what: String, _ theirs: UInt64, _ sink: UInt64) -> String? {
        let difference = theirs > sink ? theirs - sink : sink - theirs
        guard difference > 100, Double(difference) > 0.01 * Double(max(theirs, sink)) else { return nil }
        return "\(what) \(theirs) packets over the run but the sink counted \(sink)"
    }
}
