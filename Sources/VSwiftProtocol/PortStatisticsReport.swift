// A port's counters as `dump-ports` reports them: plain data with the wire names of the
// datapath's `PortStatistics`, `XSKStatistics` and `TunnelStatistics`, which vswiftd converts
// (VSwiftControl, `Reports+Datapath.swift`) so that the client needs no datapath to read them.

/// What one port has seen, summed over every worker and every socket of the port.
///
/// The first eight fields are OpenFlow's port statistics (what `ovs-ofctl dump-ports` prints);
/// `xsk` adds the kernel's AF_XDP socket statistics, which OVS does not expose.
public struct PortStatisticsReport: Codable, Sendable, Equatable {
    public var rxPackets: UInt64
    public var rxBytes: UInt64
    public var rxDropped: UInt64
    public var rxErrors: UInt64
    public var txPackets: UInt64
    public var txBytes: UInt64
    public var txDropped: UInt64
    public var txErrors: UInt64
    /// nil for ports without AF_XDP sockets (the internal tap port).
    public var xsk: XSKStatisticsReport?
    /// LISP ports only: encapsulation/decapsulation counts and drops by reason.
    public var tunnel: TunnelStatisticsReport?
    /// Device ports while the XDP flow cache is on: which path the received frames took.
    public var xdp: XDPPathReport?

    public init(
        rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, rxDropped: UInt64 = 0, rxErrors: UInt64 = 0,
        txPackets: UInt64 = 0, txBytes: UInt64 = 0, txDropped: UInt64 = 0, txErrors: UInt64 = 0,
        xsk: XSKStatisticsReport? = nil, tunnel: TunnelStatisticsReport? = nil
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
        self.tunnel = tunnel
    }
}

/// The kernel's `struct xdp_statistics` for a port's sockets (getsockopt XDP_STATISTICS), summed.
public struct XSKStatisticsReport: Codable, Sendable, Equatable {
    /// Frames the kernel dropped for reasons other than a full ring (e.g. too big for a frame).
    public var rxDropped: UInt64
    public var rxInvalidDescs: UInt64
    public var txInvalidDescs: UInt64
    /// Frames dropped because the switch's rx ring was full (it was too slow).
    public var rxRingFull: UInt64
    /// Times the kernel found the fill ring empty (the switch did not give it frames fast enough).
    public var rxFillRingEmptyDescs: UInt64
    /// Times the kernel found the tx ring empty when woken.
    public var txRingEmptyDescs: UInt64

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
}

/// What a LISP port has done, summed over workers (see the datapath's `TunnelStatistics` for
/// what each drop means).
public struct TunnelStatisticsReport: Codable, Sendable, Equatable {
    public var encapsulated: UInt64
    public var decapsulated: UInt64
    public var droppedNonIP: UInt64
    public var droppedBadHeader: UInt64
    public var droppedUnknownRLOC: UInt64
    public var droppedIIDMismatch: UInt64
    public var droppedBadInnerLength: UInt64
    public var droppedEncrypted: UInt64
    public var droppedCENotECT: UInt64
    public var droppedTTLExpired: UInt64
    /// Not decapsulated (it did not arrive on the port's underlay) but forwarded as it is: not a drop.
    public var refusedOffUnderlay: UInt64
    public var droppedNoRoute: UInt64
    public var droppedNoNeighbour: UInt64
    public var droppedTooBig: UInt64
    /// ICMP answers, inner fragmentation and outer reassembly; nil while all are zero.
    public var pathMTU: PathMTUStatisticsReport? = nil
    /// remote_ip=map drops: no map-cache entry (a Map-Request is asked), a negative entry's drop,
    /// a negative natively-forward (a LISP port has no native path); and misses the worker's
    /// queue to the control plane had no room for (not drops of their own). Absent (0) from
    /// older daemons.
    public var droppedMapMiss: UInt64 = 0
    public var droppedMapDrop: UInt64 = 0
    public var droppedMapNative: UInt64 = 0
    public var mapMissesUnqueued: UInt64 = 0

    public init(
        encapsulated: UInt64 = 0, decapsulated: UInt64 = 0, droppedNonIP: UInt64 = 0, droppedBadHeader: UInt64 = 0,
        droppedUnknownRLOC: UInt64 = 0, droppedIIDMismatch: UInt64 = 0, droppedBadInnerLength: UInt64 = 0,
        droppedEncrypted: UInt64 = 0, droppedCENotECT: UInt64 = 0, droppedTTLExpired: UInt64 = 0,
        refusedOffUnderlay: UInt64 = 0, droppedNoRoute: UInt64 = 0, droppedNoNeighbour: UInt64 = 0,
        droppedTooBig: UInt64 = 0
    ) {
        self.encapsulated = encapsulated
        self.decapsulated = decapsulated
        self.droppedNonIP = droppedNonIP
        self.droppedBadHeader = droppedBadHeader
        self.droppedUnknownRLOC = droppedUnknownRLOC
        self.droppedIIDMismatch = droppedIIDMismatch
        self.droppedBadInnerLength = droppedBadInnerLength
        self.droppedEncrypted = droppedEncrypted
        self.droppedCENotECT = droppedCENotECT
        self.droppedTTLExpired = droppedTTLExpired
        self.refusedOffUnderlay = refusedOffUnderlay
        self.droppedNoRoute = droppedNoRoute
        self.droppedNoNeighbour = droppedNoNeighbour
        self.droppedTooBig = droppedTooBig
    }
}
