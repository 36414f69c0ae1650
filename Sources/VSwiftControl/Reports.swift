import VSwiftDatapath

/// OpenFlow's reserved port number for a bridge's internal port (OFPP_LOCAL).
public let ofportLocal: UInt32 = 65534

/// One port as `show` reports it.
public struct PortDescription: Codable, Sendable, Equatable {
    public var name: String
    /// OpenFlow port number: 1, 2, … in order of addition; `ofportLocal` for the internal port.
    public var ofport: UInt32
    /// OVS interface type: "" for a system device (NIC, veth, tap), "internal", later "lisp".
    public var type: String
    /// OVS `options:` (e.g. remote_ip for LISP). Printed sorted by key.
    public var options: [String: String]
    /// How the datapath drives the device, e.g. "xdp=native, bind=copy, queues=1". Empty for internal.
    public var datapathMode: String

    public init(name: String, ofport: UInt32, type: String = "", options: [String: String] = [:], datapathMode: String = "") {
        self.name = name
        self.ofport = ofport
        self.type = type
        self.options = options
        self.datapathMode = datapathMode
    }
}

public struct BridgeDescription: Codable, Sendable, Equatable {
    public var name: String
    /// Ordered by port number, LOCAL last.
    public var ports: [PortDescription]

    public init(name: String, ports: [PortDescription]) {
        self.name = name
        self.ports = ports
    }
}

/// Result of the `show` method.
public struct ShowReport: Codable, Sendable, Equatable {
    /// The switch's UUID, printed first like `ovs-vsctl show`.
    public var systemID: String
    public var bridges: [BridgeDescription]

    public init(systemID: String, bridges: [BridgeDescription]) {
        self.systemID = systemID
        self.bridges = bridges
    }
}

public struct PortStatisticsEntry: Codable, Sendable, Equatable {
    public var ofport: UInt32
    public var name: String
    public var statistics: PortStatistics

    public init(ofport: UInt32, name: String, statistics: PortStatistics) {
        self.ofport = ofport
        self.name = name
        self.statistics = statistics
    }
}

/// Result of the `dump-ports` method.
public struct DumpPortsReport: Codable, Sendable, Equatable {
    public var bridge: String
    /// Ordered by port number, LOCAL last.
    public var ports: [PortStatisticsEntry]

    public init(bridge: String, ports: [PortStatisticsEntry]) {
        self.bridge = bridge
        self.ports = ports
    }
}

/// Result of the `frame-accounting` method: one worker's frame census.
public struct FrameAccountingReport: Codable, Sendable, Equatable, CustomStringConvertible {
    public var worker: Int
    public var total: Int
    public var free: Int
    public var inWorker: Int
    public var inKernel: Int
    public var orphaned: Int
    public var kernelByCounters: Int
    public var violations: UInt64
    /// Every frame in exactly one place, none lost or duplicated.
    public var consistent: Bool

    public init(_ a: FrameAccounting) {
        worker = a.worker
        total = a.total
        free = a.free
        inWorker = a.inWorker
        inKernel = a.inKernel
        orphaned = a.orphaned
        kernelByCounters = a.kernelByCounters
        violations = a.violations
        consistent = a.isConsistent
    }

    public var description: String {
        "worker \(worker): total=\(total) free=\(free) in-worker=\(inWorker) in-kernel=\(inKernel) (counters say \(kernelByCounters)) orphaned=\(orphaned) violations=\(violations)"
    }
}
