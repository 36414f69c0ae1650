import VSwiftDatapath

extension PipelineHarness {
    /// The harness's port names in traces: slot 0, 1, 2 (see `init`).
    public static let traceNames: [UInt16: String] = [0: "slot0", 1: "slot1", 2: "slot2"]

    /// A flow trace of `frame` as received on port slot `inPort` (see Worker+Trace.swift): a
    /// trace-mode worker with this harness's worker's configuration runs it.
    public func trace(_ frame: [UInt8], inPort: UInt16, tunnel: (UInt64, UInt32, UInt32)? = nil,
                      names: [UInt16: String] = PipelineHarness.traceNames) throws(DatapathError) -> DatapathTrace {
        let traceWorker = try worker.makeTraceWorker()
        defer { traceWorker.destroyTraceCopies() }
        worker.copyConfiguration(into: traceWorker)
        return traceWorker.runTrace(frame: frame, inPort: PortSlot(rawValue: inPort), tunnel: tunnel,
                                    names: TraceNames(ports: names, bridges: [0: "br0"]))
    }

    /// Everything of the harness's worker a trace must leave alone: port, rule and LISP counters,
    /// cache statistics, the learning table, the frame census.
    public var stateSnapshot: [UInt64] { worker.traceStateSnapshot() + [UInt64(transmitted)] }
}
