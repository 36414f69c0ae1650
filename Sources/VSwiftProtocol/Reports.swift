// Reports the control socket answers with: plain Codable data, encoded by vswiftd and decoded by
// vswiftctl (and the tests). Across builds: a newer vswiftctl must read an older vswiftd's report,
// so a counter added to a report after its first release is decoded with `decodeIfPresent`,
// default 0 (a custom `init(from:)`; the encoded form keeps every key).

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
    /// Why the port is configured but not working, e.g. its device disappeared while vswiftd was
    /// down (printed like ovs-vsctl's `error:` column).
    public var error: String?

    public init(
        name: String, ofport: UInt32, type: String = "", options: [String: String] = [:], datapathMode: String = "",
        error: String? = nil
    ) {
        self.name = name
        self.ofport = ofport
        self.type = type
        self.options = options
        self.datapathMode = datapathMode
        self.error = error
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
    /// Devices attached in underlay mode (vswift's own; OVS has none).
    public var underlays: [UnderlayDescription]
    /// The LISP control configuration (`show-lisp`'s report without its counters, static
    /// map-cache entries only counted); nil when nothing LISP is configured.
    public var lisp: ShowLISPReport?

    public init(systemID: String, bridges: [BridgeDescription], underlays: [UnderlayDescription] = [], lisp: ShowLISPReport? = nil) {
        self.systemID = systemID
        self.bridges = bridges
        self.underlays = underlays
        self.lisp = lisp
    }
}

public struct UnderlayDescription: Codable, Sendable, Equatable {
    public var name: String
    public var datapathMode: String
    public var error: String?

    public init(name: String, datapathMode: String, error: String? = nil) {
        self.name = name
        self.datapathMode = datapathMode
        self.error = error
    }
}

public struct PortStatisticsEntry: Codable, Sendable, Equatable {
    public var ofport: UInt32
    public var name: String
    public var statistics: PortStatisticsReport

    public init(ofport: UInt32, name: String, statistics: PortStatisticsReport) {
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

/// One flow as dump-flows reports it.
public struct FlowStatisticsEntry: Codable, Sendable, Equatable {
    public var cookie: UInt64
    /// Seconds since the flow was installed (millisecond resolution).
    public var duration: Double
    public var table: UInt8
    public var packets: UInt64
    public var bytes: UInt64
    /// 0 = none.
    public var idleTimeout: UInt16
    /// 0 = none.
    public var hardTimeout: UInt16
    /// Whole seconds since a packet last matched (since installation when none has).
    public var idleAge: UInt64
    /// Whole seconds since the flow was last modified (mod-flows); nil when it never was.
    public var hardAge: UInt64?
    public var priority: UInt16
    /// The match in ovs-ofctl syntax without the priority, e.g. `ip,in_port=1,nw_src=10.1.1.0/24`;
    /// empty for a flow that matches every packet.
    public var match: String
    /// ovs-ofctl syntax, e.g. `mod_dl_dst:52:54:00:b8:27:75,output:1` or `drop`.
    public var actions: String

    public init(
        cookie: UInt64 = 0, duration: Double, table: UInt8 = 0, packets: UInt64, bytes: UInt64,
        idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0, idleAge: UInt64, hardAge: UInt64? = nil,
        priority: UInt16, match: String, actions: String
    ) {
        self.cookie = cookie
        self.duration = duration
        self.table = table
        self.packets = packets
        self.bytes = bytes
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.idleAge = idleAge
        self.hardAge = hardAge
        self.priority = priority
        self.match = match
        self.actions = actions
    }
}

/// Result of the `dump-flows` method.
public struct DumpFlowsReport: Codable, Sendable, Equatable {
    public var bridge: String
    /// By priority, highest first; flows of equal priority in the order they were installed.
    public var flows: [FlowStatisticsEntry]

    public init(bridge: String, flows: [FlowStatisticsEntry]) {
        self.bridge = bridge
        self.flows = flows
    }
}

// dump-flows may report a million flows: its JSON is built and read by hand, not through Codable
// (which goes by way of Foundation's encoder and decoder and takes some ten times as long).

extension FlowStatisticsEntry {
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "cookie": JSONValue(unsigned: cookie), "duration": .double(duration), "table": .int(Int64(table)),
            "packets": JSONValue(unsigned: packets), "bytes": JSONValue(unsigned: bytes),
            "idleTimeout": .int(Int64(idleTimeout)), "hardTimeout": .int(Int64(hardTimeout)),
            "idleAge": JSONValue(unsigned: idleAge), "priority": .int(Int64(priority)),
            "match": .string(match), "actions": .string(actions),
        ]
        if let hardAge { members["hardAge"] = JSONValue(unsigned: hardAge) }
        return .object(members)
    }

    public init(json: JSONValue) throws(RPCError) {
        let fields = try JSONFields(json, "flows[]")
        self.init(
            cookie: try fields.unsigned("cookie"), duration: try fields.double("duration"),
            table: try fields.unsigned("table"), packets: try fields.unsigned("packets"), bytes: try fields.unsigned("bytes"),
            idleTimeout: try fields.unsigned("idleTimeout"), hardTimeout: try fields.unsigned("hardTimeout"),
            idleAge: try fields.unsigned("idleAge"), hardAge: try fields.optionalUnsigned("hardAge"),
            priority: try fields.unsigned("priority"), match: try fields.string("match"), actions: try fields.string("actions"))
    }
}

extension DumpFlowsReport {
    public var jsonValue: JSONValue {
        .object(["bridge": .string(bridge), "flows": .array(flows.map(\.jsonValue))])
    }

    public init(json: JSONValue) throws(RPCError) {
        let fields = try JSONFields(json, "result")
        guard case .array(let items)? = fields.members["flows"] else { throw fields.invalid("flows") }
        var flows: [FlowStatisticsEntry] = []
        flows.reserveCapacity(items.count)
        for item in items { flows.append(try FlowStatisticsEntry(json: item)) }
        self.init(bridge: try fields.string("bridge"), flows: flows)
    }
}

extension JSONValue {
    /// `.int` when it fits, else `.uint` (as the parser reads numbers back).
    init(unsigned value: UInt64) {
        self = value <= UInt64(Int64.max) ? .int(Int64(value)) : .uint(value)
    }
}

/// Reads the members of a JSON object by hand, with errors naming the field.
struct JSONFields {
    let members: [String: JSONValue]
    let context: String

    init(_ value: JSONValue, _ context: String) throws(RPCError) {
        guard case .object(let members) = value else { throw .internalError("\(context) is not an object") }
        self.members = members
        self.context = context
    }

    func invalid(_ key: String) -> RPCError {
        .internalError("\(context).\(key) is missing or of the wrong type")
    }

    func string(_ key: String) throws(RPCError) -> String {
        guard case .string(let value)? = members[key] else { throw invalid(key) }
        return value
    }

    func double(_ key: String) throws(RPCError) -> Double {
        switch members[key] {
        case .double(let value)?: return value
        case .int(let value)?: return Double(value)
        case .uint(let value)?: return Double(value)
        default: throw invalid(key)
        }
    }

    func unsigned<T: FixedWidthInteger & UnsignedInteger>(_ key: String) throws(RPCError) -> T {
        guard let value: T = try optionalUnsigned(key) else { throw invalid(key) }
        return value
    }

    func optionalUnsigned<T: FixedWidthInteger & UnsignedInteger>(_ key: String) throws(RPCError) -> T? {
        switch members[key] {
        case nil, .null?: return nil
        case .int(let value)?: if let exact = T(exactly: value) { return exact }
        case .uint(let value)?: if let exact = T(exactly: value) { return exact }
        default: break
        }
        throw invalid(key)
    }
}

/// Result of the `frame-accounting` method: one worker's frame census (the datapath's
/// `FrameAccounting`, as data).
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

    public init(
        worker: Int, total: Int, free: Int, inWorker: Int, inKernel: Int, orphaned: Int, kernelByCounters: Int,
        violations: UInt64, consistent: Bool
    ) {
        self.worker = worker
        self.total = total
        self.free = free
        self.inWorker = inWorker
        self.inKernel = inKernel
        self.orphaned = orphaned
        self.kernelByCounters = kernelByCounters
        self.violations = violations
        self.consistent = consistent
    }

    public var description: String {
        "worker \(worker): total=\(total) free=\(free) in-worker=\(inWorker) in-kernel=\(inKernel) (counters say \(kernelByCounters)) orphaned=\(orphaned) violations=\(violations)"
    }
}

/// One entry of the `dump-workers` result: a worker's frames and where its time went, in
/// time-stamp-counter cycles (see the datapath's `WorkerCycles`: busy and idle rounds without
/// their system calls, and the system calls themselves; the worker's sleeps are in none).
public struct WorkerReport: Codable, Sendable, Equatable {
    public var worker: Int
    public var cpu: Int?
    public var rxPackets: UInt64
    public var txPackets: UInt64
    public var rounds: UInt64
    public var busyCycles: UInt64
    public var idleCycles: UInt64
    public var systemCallCycles: UInt64

    public init(
        worker: Int, cpu: Int? = nil, rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rounds: UInt64 = 0,
        busyCycles: UInt64 = 0, idleCycles: UInt64 = 0, systemCallCycles: UInt64 = 0
    ) {
        self.worker = worker
        self.cpu = cpu
        self.rxPackets = rxPackets
        self.txPackets = txPackets
        self.rounds = rounds
        self.busyCycles = busyCycles
        self.idleCycles = idleCycles
        self.systemCallCycles = systemCallCycles
    }

    /// User-space cycles spent per received packet (busy rounds only); nil before any packet.
    public var busyCyclesPerPacket: Double? {
        rxPackets == 0 ? nil : Double(busyCycles) / Double(rxPackets)
    }
}
