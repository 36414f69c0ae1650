// The control socket's methods and the params each takes: the vocabulary of vswiftctl and vswiftd.

// MARK: - Methods and their params

/// The control methods, named as the `vswiftctl` subcommands that send them.
public enum ControlMethod: String, CaseIterable, Sendable {
    case addBridge = "add-br"
    case delBridge = "del-br"
    case addPort = "add-port"
    case delPort = "del-port"
    case show
    case dumpPorts = "dump-ports"
    /// Diagnostics: each worker's frame census (see FrameAccounting); used by tests.
    case frameAccounting = "frame-accounting"
    /// vswift's own (cf. OVS's `ovs-appctl dpif-netdev/pmd-stats-show`): per worker, frames
    /// and where its time went, in cycles.
    case dumpWorkers = "dump-workers"
    case addFlow = "add-flow"
    case addFlows = "add-flows"
    case replaceFlows = "replace-flows"
    case delFlows = "del-flows"
    case modFlows = "mod-flows"
    case dumpFlows = "dump-flows"
    /// vswift's own: attach / detach a device the host shares with LISP (underlay mode).
    case addUnderlay = "add-underlay"
    case delUnderlay = "del-underlay"
    /// What the datapath would do with a frame, and why (cf. `ovs-appctl ofproto/trace`).
    case trace
    /// vswift's own (cf. ovs-tcpdump, xdpdump): a port's frames, polled (CaptureMessages.swift).
    case captureStart = "capture-start"
    case captureRead = "capture-read"
    case captureStop = "capture-stop"
    /// The LISP mapping system (issue 16; params in LISPControlParams.swift, reports in LISPReports.swift).
    case addMapServer = "add-map-server"
    case delMapServer = "del-map-server"
    case addMapResolver = "add-map-resolver"
    case delMapResolver = "del-map-resolver"
    case addEID = "add-eid"
    case delEID = "del-eid"
    case addMapCache = "add-map-cache"
    case delMapCache = "del-map-cache"
    case showLISP = "show-lisp"
    case dumpMapCache = "dump-map-cache"
    /// The XDP flow cache's entries, statistics and path counts (cf. `ovs-appctl dpctl/dump-flows`).
    case dumpXDPCache = "dump-xdp-cache"
}

extension ControlMethod {
    /// Methods that change only flows: the saved configuration's journal replays them.
    public var isFlowChange: Bool {
        switch self {
        case .addFlow, .addFlows, .replaceFlows, .delFlows, .modFlows: true
        default: false
        }
    }

    /// Methods that change the LISP control configuration (map-servers, resolvers, EIDs, static map-cache).
    public var isLISPChange: Bool {
        switch self {
        case .addMapServer, .delMapServer, .addMapResolver, .delMapResolver, .addEID, .delEID, .addMapCache, .delMapCache: true
        default: false
        }
    }

    /// Methods that may change bridges, ports or flows (and so the saved configuration).
    public var changesConfiguration: Bool {
        switch self {
        case .show, .dumpPorts, .frameAccounting, .dumpWorkers, .dumpFlows, .trace: false
        case .captureStart, .captureRead, .captureStop: false
        case .showLISP, .dumpMapCache, .dumpXDPCache: false
        case .addMapServer, .delMapServer, .addMapResolver, .delMapResolver, .addEID, .delEID, .addMapCache, .delMapCache: true
        case .addBridge, .delBridge, .addPort, .delPort, .addFlow, .addFlows, .replaceFlows, .delFlows, .modFlows,
             .addUnderlay, .delUnderlay: true
        }
    }
}

/// Params of add-br and del-br.
public struct BridgeParams: Codable, Sendable, Equatable {
    public var bridge: String

    public init(bridge: String) {
        self.bridge = bridge
    }
}

/// Params of add-underlay and del-underlay.
public struct UnderlayParams: Codable, Sendable, Equatable {
    public var device: String

    public init(device: String) {
        self.device = device
    }
}

public struct DumpPortsParams: Codable, Sendable, Equatable {
    public var bridge: String
    /// Only this port when given.
    public var port: String?

    public init(bridge: String, port: String? = nil) {
        self.bridge = bridge
        self.port = port
    }
}

public struct AddPortParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var port: String
    /// OVS interface type; nil or "" for a system device.
    public var type: String?
    public var options: [String: String]?

    public init(bridge: String, port: String, type: String? = nil, options: [String: String]? = nil) {
        self.bridge = bridge
        self.port = port
        self.type = type
        self.options = options
    }
}

public struct DelPortParams: Codable, Sendable, Equatable {
    /// When given, the port must be on this bridge (as with `ovs-vsctl del-port BR PORT`).
    public var bridge: String?
    public var port: String

    public init(bridge: String? = nil, port: String) {
        self.bridge = bridge
        self.port = port
    }
}

/// Params of add-flow: one flow in ovs-ofctl syntax, e.g. `priority=3,dl_dst=02:00:00:00:00:00,actions=output:1`.
public struct AddFlowParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var flow: String

    public init(bridge: String, flow: String) {
        self.bridge = bridge
        self.flow = flow
    }
}

/// Params of add-flows and replace-flows: the lines of a flow file, as they are (blank lines and
/// `#` comments included, so that errors can name the file's line numbers). All or nothing.
public struct FlowLinesParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var flows: [String]

    public init(bridge: String, flows: [String]) {
        self.bridge = bridge
        self.flows = flows
    }

    /// Builds the JSON directly: a flow file may have a million lines, and the Codable route
    /// (encode, then decode into a `JSONValue`) would hold it three times.
    public var jsonValue: JSONValue {
        .object(["bridge": .string(bridge), "flows": .array(flows.map(JSONValue.string))])
    }

    /// Reads the params from the request's JSON (absent params read as `{}`).
    public init(from params: JSONValue?) throws(RPCError) {
        self = try (params ?? .object([:])).decode(Self.self)
    }
}

/// Params of del-flows. No `match` deletes every flow (the bridge then drops everything).
public struct DelFlowsParams: Codable, Sendable, Equatable {
    public var bridge: String
    /// A match in ovs-ofctl syntax (no actions); `priority=` counts only with `strict`.
    public var match: String?
    /// Only the flow with exactly this match and priority, instead of every flow at least as specific.
    public var strict: Bool?

    public init(bridge: String, match: String? = nil, strict: Bool? = nil) {
        self.bridge = bridge
        self.match = match
        self.strict = strict
    }
}

/// Params of mod-flows: a flow whose match selects the flows (as del-flows does) and whose
/// actions replace theirs.
public struct ModFlowsParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var flow: String
    public var strict: Bool?

    public init(bridge: String, flow: String, strict: Bool? = nil) {
        self.bridge = bridge
        self.flow = flow
        self.strict = strict
    }
}

/// Params of dump-flows: every flow, or those at least as specific as `match`.
public struct DumpFlowsParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var match: String?
    /// Answer with the flows as ovs-ofctl dump-flows text lines (`{"bridge", "lines"}`) instead of
    /// their fields: formatted by vswiftd on all cores, and far quicker to send and read for a
    /// big table.
    public var text: Bool?

    public init(bridge: String, match: String? = nil, text: Bool? = nil) {
        self.bridge = bridge
        self.match = match
        self.text = text
    }
}

/// Result of add-flows, replace-flows, del-flows and mod-flows: what changed.
public struct FlowChangeReport: Codable, Sendable, Equatable {
    /// Flows added (or replaced by a new one).
    public var added: Int
    public var modified: Int
    public var deleted: Int

    public init(added: Int = 0, modified: Int = 0, deleted: Int = 0) {
        self.added = added
        self.modified = modified
        self.deleted = deleted
    }
}
