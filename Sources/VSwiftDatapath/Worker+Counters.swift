import CSupport
import CXDP

/// One worker's counters for one port: one cache line, written only by that worker.
package struct PortCounterBlock {
    var rxPackets: UInt64 = 0
    var rxBytes: UInt64 = 0
    package var rxDropped: UInt64 = 0
    var rxErrors: UInt64 = 0
    var txPackets: UInt64 = 0
    var txBytes: UInt64 = 0
    var txDropped: UInt64 = 0
    var txErrors: UInt64 = 0
}

/// Where a worker's time goes, in time-stamp-counter cycles (one cache line, written only by the
/// worker, read relaxed). `busy` and `idle` are rounds over the rx sources that did / did not
/// receive frames, each without the time spent inside system calls (tx kicks, fill-ring wakeups,
/// tap reads and writes), which is `systemCalls`. The sleep in poll() between idle rounds is in
/// none of them. busy + idle is the worker's user-space time, measured to the cycle (unlike the
/// kernel's tick-sampled utime); busy divided by packets is user cycles per packet.
public struct WorkerCycles: Sendable, Equatable {
    public var busy: UInt64 = 0
    public var idle: UInt64 = 0
    public var systemCalls: UInt64 = 0
    public var rounds: UInt64 = 0
    public init() {}
    public init(busy: UInt64, idle: UInt64, systemCalls: UInt64, rounds: UInt64) {
        self.busy = busy
        self.idle = idle
        self.systemCalls = systemCalls
        self.rounds = rounds
    }
    public static func - (a: WorkerCycles, b: WorkerCycles) -> WorkerCycles {
        WorkerCycles(busy: a.busy &- b.busy, idle: a.idle &- b.idle, systemCalls: a.systemCalls &- b.systemCalls,
                     rounds: a.rounds &- b.rounds)
    }
    public static func + (a: WorkerCycles, b: WorkerCycles) -> WorkerCycles {
        WorkerCycles(busy: a.busy &+ b.busy, idle: a.idle &+ b.idle, systemCalls: a.systemCalls &+ b.systemCalls,
                     rounds: a.rounds &+ b.rounds)
    }
}

/// One worker's counters for one rule (32 bytes; only the owning worker writes them).
package struct RuleCounterBlock {
    package var packets: UInt64 = 0
    package var bytes: UInt64 = 0
    package var lastUsed: UInt64 = 0
    var reserved: UInt64 = 0
}

/// Frame census of one worker, for the accounting invariant: every frame is in exactly one place.
public struct FrameAccounting: Sendable, CustomStringConvertible {
    public let worker: Int
    public let total: Int
    public let free: Int
    /// Frames the worker holds between bursts: must be 0 when parked.
    public let inWorker: Int
    /// Frames held by the kernel through open sockets (fill/rx and tx/completion rings).
    public let inKernel: Int
    /// Frames owned by sockets that are no longer open: must be 0.
    public let orphaned: Int
    /// What the worker's own counters say the kernel holds: must equal `inKernel`.
    public let kernelByCounters: Int
    /// Ownership transitions that found the wrong owner (a duplicated or foreign address): must be 0.
    public let violations: UInt64

    public var isConsistent: Bool {
        free + inWorker + inKernel + orphaned == total && inWorker == 0 && orphaned == 0
            && inKernel == kernelByCounters && violations == 0
    }

    public var description: String {
        "worker \(worker): total=\(total) free=\(free) in-worker=\(inWorker) in-kernel=\(inKernel) (counters say \(kernelByCounters)) orphaned=\(orphaned) violations=\(violations)"
    }
}

/// Counters: each worker writes its own (relaxed atomic adds, cache-line-aligned blocks, no
/// sharing); these readers load them relaxed from any thread and the datapath sums the workers.
extension Worker {
    package func ruleCounters(_ slot: Int) -> RuleCounterBlock {
        let c = ruleCounters + slot
        return RuleCounterBlock(
            packets: vs_load_relaxed_u64(&c.pointee.packets), bytes: vs_load_relaxed_u64(&c.pointee.bytes),
            lastUsed: vs_load_relaxed_u64(&c.pointee.lastUsed))
    }

    /// The worker's cycle accounting so far (any thread).
    package func cycleAccounting() -> WorkerCycles {
        WorkerCycles(busy: vs_load_relaxed_u64(&cycles.pointee.busy), idle: vs_load_relaxed_u64(&cycles.pointee.idle),
                     systemCalls: vs_load_relaxed_u64(&cycles.pointee.systemCalls),
                     rounds: vs_load_relaxed_u64(&cycles.pointee.rounds))
    }

    func portCounters(_ port: PortSlot) -> PortCounterBlock {
        let c = counters + port.index
        return PortCounterBlock(
            rxPackets: vs_load_relaxed_u64(&c.pointee.rxPackets), rxBytes: vs_load_relaxed_u64(&c.pointee.rxBytes),
            rxDropped: vs_load_relaxed_u64(&c.pointee.rxDropped), rxErrors: vs_load_relaxed_u64(&c.pointee.rxErrors),
            txPackets: vs_load_relaxed_u64(&c.pointee.txPackets), txBytes: vs_load_relaxed_u64(&c.pointee.txBytes),
            txDropped: vs_load_relaxed_u64(&c.pointee.txDropped), txErrors: vs_load_relaxed_u64(&c.pointee.txErrors))
    }

    /// The exact-match cache's hits and misses so far (any thread). Plain words that only this
    /// worker writes, once per lookup or burst, read here without synchronization: a reader may
    /// see them a burst late, never torn (aligned 64-bit loads and stores are single instructions
    /// on x86-64 and arm64). Counting them atomically would cost the packet path for a statistic.
    package func cacheCounts() -> (hits: UInt64, misses: UInt64) {
        (cache.hits, cache.misses)
    }

    /// Frame census (worker parked).
    package func accounting() -> FrameAccounting {
        let census = pool.census()
        var inKernel = 0
        var orphaned = 0
        for (slot, count) in census.kernel {
            if slot < DatapathLimits.maxSocketsPerWorker && sockets[slot].isOpen { inKernel += count } else { orphaned += count }
        }
        var byCounters = 0
        for i in 0..<activeCount {
            let s = sockets[Int(activeSlots[i])]
            byCounters += Int(s.fillOutstanding) + Int(s.txOutstanding)
        }
        return FrameAccounting(
            worker: index, total: Int(pool.frameCount), free: census.pool, inWorker: census.worker,
            inKernel: inKernel, orphaned: orphaned, kernelByCounters: byCounters, violations: pool.violations)
    }

    /// Summed counters of a LISP port on this worker.
    package func tunnelStatistics(_ port: PortSlot) -> TunnelStatistics {
        let c = tunnelCounters + port.index
        var s = TunnelStatistics()
        s.encapsulated = vs_load_relaxed_u64(&c.pointee.encapsulated)
        s.decapsulated = vs_load_relaxed_u64(&c.pointee.decapsulated)
        s.droppedNonIP = vs_load_relaxed_u64(&c.pointee.nonIP)
        s.droppedBadHeader = vs_load_relaxed_u64(&c.pointee.badHeader)
        s.droppedUnknownRLOC = vs_load_relaxed_u64(&c.pointee.unknownRLOC)
        s.droppedIIDMismatch = vs_load_relaxed_u64(&c.pointee.iidMismatch)
        s.droppedBadInnerLength = vs_load_relaxed_u64(&c.pointee.badInnerLength)
        s.droppedEncrypted = vs_load_relaxed_u64(&c.pointee.encrypted)
        s.droppedCENotECT = vs_load_relaxed_u64(&c.pointee.ceNotECT)
        s.droppedTTLExpired = vs_load_relaxed_u64(&c.pointee.ttlExpired)
        s.refusedOffUnderlay = vs_load_relaxed_u64(&c.pointee.offUnderlay)
        s.droppedNoRoute = vs_load_relaxed_u64(&c.pointee.noRoute)
        s.droppedNoNeighbour = vs_load_relaxed_u64(&c.pointee.noNeighbour)
        s.droppedTooBig = vs_load_relaxed_u64(&c.pointee.tooBig)
        s.pathMTU = PathMTUStatistics(&c.pointee.pathMTU)
        s.droppedMapMiss = vs_load_relaxed_u64(&c.pointee.mapMiss)
        s.droppedMapDrop = vs_load_relaxed_u64(&c.pointee.mapDrop)
        s.droppedMapNative = vs_load_relaxed_u64(&c.pointee.mapNative)
        s.mapMissesUnqueued = vs_load_relaxed_u64(&c.pointee.mapMissUnqueued)
        return s
    }
}
