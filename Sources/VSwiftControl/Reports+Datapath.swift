import VSwiftDatapath
import VSwiftProtocol

// The reports of VSwiftProtocol are plain data, so that vswiftctl can read them without the
// datapath; here vswiftd makes them from the datapath's own types, field for field.

extension PortStatisticsReport {
    public init(_ s: PortStatistics) {
        self.init(
            rxPackets: s.rxPackets, rxBytes: s.rxBytes, rxDropped: s.rxDropped, rxErrors: s.rxErrors,
            txPackets: s.txPackets, txBytes: s.txBytes, txDropped: s.txDropped, txErrors: s.txErrors,
            xsk: s.xsk.map(XSKStatisticsReport.init), tunnel: s.tunnel.map(TunnelStatisticsReport.init))
    }
}

extension XSKStatisticsReport {
    public init(_ s: XSKStatistics) {
        self.init(
            rxDropped: s.rxDropped, rxInvalidDescs: s.rxInvalidDescs, txInvalidDescs: s.txInvalidDescs,
            rxRingFull: s.rxRingFull, rxFillRingEmptyDescs: s.rxFillRingEmptyDescs, txRingEmptyDescs: s.txRingEmptyDescs)
    }
}

extension TunnelStatisticsReport {
    public init(_ s: TunnelStatistics) {
        self.init(
            encapsulated: s.encapsulated, decapsulated: s.decapsulated, droppedNonIP: s.droppedNonIP,
            droppedBadHeader: s.droppedBadHeader, droppedUnknownRLOC: s.droppedUnknownRLOC,
            droppedIIDMismatch: s.droppedIIDMismatch, droppedBadInnerLength: s.droppedBadInnerLength,
            droppedEncrypted: s.droppedEncrypted, droppedCENotECT: s.droppedCENotECT, droppedTTLExpired: s.droppedTTLExpired,
            refusedOffUnderlay: s.refusedOffUnderlay, droppedNoRoute: s.droppedNoRoute,
            droppedNoNeighbour: s.droppedNoNeighbour, droppedTooBig: s.droppedTooBig)
        if !s.pathMTU.isZero { pathMTU = PathMTUStatisticsReport(s.pathMTU) }
        droppedMapMiss = s.droppedMapMiss
        droppedMapDrop = s.droppedMapDrop
        droppedMapNative = s.droppedMapNative
        mapMissesUnqueued = s.mapMissesUnqueued
    }
}

extension FrameAccountingReport {
    public init(_ a: FrameAccounting) {
        self.init(
            worker: a.worker, total: a.total, free: a.free, inWorker: a.inWorker, inKernel: a.inKernel,
            orphaned: a.orphaned, kernelByCounters: a.kernelByCounters, violations: a.violations,
            consistent: a.isConsistent)
    }
}

extension WorkerReport {
    public init(_ s: WorkerStatistics) {
        self.init(
            worker: s.worker, cpu: s.cpu, rxPackets: s.rxPackets, txPackets: s.txPackets, rounds: s.cycles.rounds,
            busyCycles: s.cycles.busy, idleCycles: s.cycles.idle, systemCallCycles: s.cycles.systemCalls)
    }
}

extension PathMTUStatisticsReport {
    public init(_ s: PathMTUStatistics) {
        self.init()
        icmpSent = s.icmpSent
        icmpRateLimited = s.icmpRateLimited
        innerFragmented = s.innerFragmented
        innerFragments = s.innerFragments
        reassembled = s.reassembled
        reassemblyTimeouts = s.reassemblyTimeouts
        reassemblyOverlaps = s.reassemblyOverlaps
        fragmentDuplicates = s.fragmentDuplicates
        reassemblyTableFull = s.reassemblyTableFull
        reassemblyTooBig = s.reassemblyTooBig
        reassemblyTooManyFragments = s.reassemblyTooManyFragments
        reassemblyMalformed = s.reassemblyMalformed
    }
}
