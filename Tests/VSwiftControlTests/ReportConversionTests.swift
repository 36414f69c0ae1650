import Testing
import VSwiftProtocol

@testable import VSwiftControl
// For FrameAccounting's memberwise init.
@testable import VSwiftDatapath

/// The protocol's reports are plain copies of datapath types (`Reports+Datapath.swift`): every
/// field must arrive, under the name the datapath type has on the wire.
@Suite struct ReportConversionTests {
    @Test func portStatisticsKeepEveryFieldAndItsWireName() throws {
        var statistics = PortStatistics(
            rxPackets: .max, rxBytes: 2, rxDropped: 3, rxErrors: 4, txPackets: 5, txBytes: 6, txDropped: 7, txErrors: 8,
            xsk: XSKStatistics(
                rxDropped: 9, rxInvalidDescs: 10, txInvalidDescs: 11, rxRingFull: 12, rxFillRingEmptyDescs: 13,
                txRingEmptyDescs: 14))
        var tunnel = TunnelStatistics()
        tunnel.encapsulated = 15
        tunnel.decapsulated = 16
        tunnel.droppedNonIP = 17
        tunnel.droppedBadHeader = 18
        tunnel.droppedUnknownRLOC = 19
        tunnel.droppedIIDMismatch = 20
        tunnel.droppedBadInnerLength = 21
        tunnel.refusedOffUnderlay = 22
        tunnel.droppedNoRoute = 23
        tunnel.droppedNoNeighbour = 24
        tunnel.droppedTooBig = 25
        tunnel.droppedEncrypted = 26
        tunnel.droppedCENotECT = 27
        tunnel.droppedTTLExpired = 28
        // Path MTU counters travel only once one is nonzero (then every one, by name).
        let names: [WritableKeyPath<PathMTUStatistics, UInt64>] = [
            \.icmpSent, \.icmpRateLimited, \.innerFragmented, \.innerFragments, \.reassembled, \.reassemblyTimeouts,
            \.reassemblyOverlaps, \.fragmentDuplicates, \.reassemblyTableFull, \.reassemblyTooBig,
            \.reassemblyTooManyFragments, \.reassemblyMalformed,
        ]
        for (i, name) in names.enumerated() { tunnel.pathMTU[keyPath: name] = UInt64(40 + i) }
        statistics.tunnel = tunnel
        let report = PortStatisticsReport(statistics)
        #expect(try JSONValue(encoding: report) == JSONValue(encoding: statistics))
        #expect(try JSONValue(encoding: statistics).decode(PortStatisticsReport.self) == report)
        // Without the optional parts too (the internal port has no sockets, a veth no tunnel).
        let plain = PortStatistics(rxPackets: 1)
        #expect(try JSONValue(encoding: PortStatisticsReport(plain)) == JSONValue(encoding: plain))
    }

    @Test func frameAccountingAndWorkerStatistics() async throws {
        let h = Harness()
        // The fake datapath's one worker: 100 packets, 10,000 accounted cycles.
        let reports = try await h.ok("dump-workers").decode([WorkerReport].self)
        #expect(
            reports == [
                WorkerReport(
                    worker: 0, cpu: 1, rxPackets: 100, txPackets: 99, rounds: 7, busyCycles: 5_740, idleCycles: 1_000,
                    systemCallCycles: 3_260)
            ])
        let census = FrameAccounting(
            worker: 2, total: 10, free: 4, inWorker: 3, inKernel: 2, orphaned: 1, kernelByCounters: 2, violations: 5)
        #expect(
            FrameAccountingReport(census)
                == FrameAccountingReport(
                    worker: 2, total: 10, free: 4, inWorker: 3, inKernel: 2, orphaned: 1, kernelByCounters: 2,
                    violations: 5, consistent: census.isConsistent))
    }
}
