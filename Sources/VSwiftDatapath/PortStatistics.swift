/// What one port has seen, summed over every worker and every socket of the port.
///
/// The first eight fields are OpenFlow's port statistics (what `ovs-ofctl dump-ports` prints);
/// `xsk` adds the kernel's AF_XDP socket statistics, which OVS does not expose.
public struct PortStatistics: Codable, Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var rxDropped: UInt64 = 0
    public var rxErrors: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var txDropped: UInt64 = 0
    public var txErrors: UInt64 = 0
    /// nil for ports without AF_XDP sockets (the internal tap port).
    public var xsk: XSKStatistics?
    /// LISP ports only: encapsulation/decapsulation counts and drops by reason.
    public var tunnel: TunnelStatistics?

    public init(
        rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, rxDropped: UInt64 = 0, rxErrors: UInt64 = 0,
        txPackets: UInt64 = 0, txBytes: UInt64 = 0, txDropped: UInt64 = 0, txErrors: UInt64 = 0,
        xsk: XSKStatistics? = nil
    ) {
        self.rxPackets = rxPackets
        self.rxBytes = rxBytes
        self.rxDropped = rxDropped
        self.rxErrors = rxErrors
        self.txPackets = txPackets
        self.txBytes = txBytes
        self.txDropped = txDropped
        self.txErrors = txErrors
        self.xsk = xsk
    }
}

/// The kernel's `struct xdp_statistics` for a port's sockets (getsockopt XDP_STATISTICS), summed.
public struct XSKStatistics: Codable, Sendable, Equatable {
    /// Frames the kernel dropped for reasons other than a full ring (e.g. too big for a frame).
    public var rxDropped: UInt64 = 0
    public var rxInvalidDescs: UInt64 = 0
    public var txInvalidDescs: UInt64 = 0
    /// Frames dropped because our rx ring was full (we were too slow).
    public var rxRingFull: UInt64 = 0
    /// Times the kernel found the fill ring empty (we did not give it frames fast enough).
    public var rxFillRingEmptyDescs: UInt64 = 0
    /// Times the kernel found the tx ring empty when woken.
    public var txRingEmptyDescs: UInt64 = 0

    public init(
        rxDropped: UInt64 = 0, rxInvalidDescs: UInt64 = 0, txInvalidDescs: UInt64 = 0,
        rxRingFull: UInt64 = 0, rxFillRingEmptyDescs: UInt64 = 0, txRingEmptyDescs: UInt64 = 0
    ) {
        self.rxDropped = rxDropped
        self.rxInvalidDescs = rxInvalidDescs
        self.txInvalidDescs = txInvalidDescs
        self.rxRingFull = rxRingFull
        self.rxFillRingEmptyDescs = rxFillRingEmptyDescs
        self.txRingEmptyDescs = txRingEmptyDescs
    }

    public static func + (a: XSKStatistics, b: XSKStatistics) -> XSKStatistics {
        XSKStatistics(
            rxDropped: a.rxDropped + b.rxDropped, rxInvalidDescs: a.rxInvalidDescs + b.rxInvalidDescs,
            txInvalidDescs: a.txInvalidDescs + b.txInvalidDescs, rxRingFull: a.rxRingFull + b.rxRingFull,
            rxFillRingEmptyDescs: a.rxFillRingEmptyDescs + b.rxFillRingEmptyDescs,
            txRingEmptyDescs: a.txRingEmptyDescs + b.txRingEmptyDescs)
    }
}

/// One worker's totals: frames received and sent on all ports, and its cycle accounting.
public struct WorkerStatistics: Sendable, Equatable {
    public var worker: Int
    /// The CPU the worker is pinned to, if it is.
    public var cpu: Int?
    public var rxPackets: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var cycles: WorkerCycles
    /// Keys the exact-match cache answered, and those it sent to the classifier (a table whose
    /// rules look at no field is decided without either; see DESIGN.md, "The path of a packet").
    public var cacheHits: UInt64 = 0
    public var cacheMisses: UInt64 = 0

    public init(worker: Int, cpu: Int? = nil, rxPackets: UInt64 = 0, txPackets: UInt64 = 0, cycles: WorkerCycles = WorkerCycles()) {
        self.worker = worker
        self.cpu = cpu
        self.rxPackets = rxPackets
        self.txPackets = txPackets
        self.cycles = cycles
    }
}
