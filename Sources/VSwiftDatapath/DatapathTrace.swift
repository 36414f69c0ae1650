import VSwiftClassifier
import VSwiftMapCache
import VSwiftPacket

/// What the pipeline did with one traced frame (see Worker+Trace.swift), as data: the control
/// plane names the rules (by counter slot) and words it. Stages in the order they ran: the frame
/// as received, then each packet decapsulation or encapsulation handed on (a decapsulated inner
/// packet entering its LISP port's bridge; an encapsulated packet re-entering the bridge whose
/// internal port its route leaves by).
public struct DatapathTrace: Sendable {
    /// Stages past this many are not run (their frames dropped, counted in `stagesLeftOut`).
    public static let maxStages = 16

    public enum Entry: String, Sendable, Codable {
        /// The frame as given, received on its input port.
        case received
        /// The inner packet of a LISP packet, entering the LISP port's bridge on that port.
        case decapsulated
        /// An encapsulated packet entering the bridge whose internal port its route leaves by.
        case reentered
    }

    /// A rule the stage's lookup counted (a bridge's table; `counterSlot` names the flow).
    public struct RuleHit: Sendable {
        public var bridge: String
        public var counterSlot: Int
        public var packets: UInt64
    }

    /// A frame the stage would have sent out of a port.
    public struct Output: Sendable {
        public var port: String
        public var ofport: UInt32?
        /// The port's bridge; nil for an underlay device.
        public var bridge: String?
        public var frame: [UInt8]
    }

    /// A counter of the trace worker that the stage moved: drops and errors by port, LISP
    /// encapsulations, decapsulations and drops by reason (the names dump-ports uses).
    public struct Event: Sendable, Equatable {
        public var port: String
        public var counter: String
        public var count: UInt64
    }

    /// What a remote_ip=map port's map-cache lookup found for a packet: the entry (its prefix) and
    /// what it says, with the RLOC chosen when it encapsulates; `prefix` nil: no entry (a miss).
    public struct MapCacheOutcome: Sendable {
        public var port: String
        public var instanceID: UInt32
        public var destination: IPAddress
        public var prefix: EIDPrefix?
        public var action: MapCacheAction
        public var rloc: IPAddress?
    }

    /// NORMAL's answer for the frame's destination MAC.
    public struct NormalDecision: Sendable {
        public var destination: UInt64 = 0
        public var isGroup = false
        /// Where the destination was learned; nil: unknown (or a group address), flooded.
        public var learnedPort: String?
        /// The bridge's ports but the input, when flooded.
        public var floodPorts: [String] = []
    }

    public struct Stage: Sendable {
        public var entry = Entry.received
        /// The LISP port that decapsulated or encapsulated the packet (not for `received`).
        public var lispPort: String?
        /// nil: the input port is in no bridge (an underlay device).
        public var bridge: String?
        public var inPort = ""
        public var inPortNumber: UInt32?
        /// Encapsulations on the way here.
        public var depth = 0
        public var tunnelID: UInt64 = 0
        public var tunnelSource: UInt32 = 0
        public var tunnelDestination: UInt32 = 0
        /// The frame as the stage starts.
        public var frame: [UInt8] = []
        /// Its flow key, extracted as the workers do.
        public var key = FlowKey()
        /// The bridge has a flow table (else it is a plain learning switch: NORMAL).
        public var hasFlowTable = false
        public var hits: [RuleHit] = []
        public var normal: NormalDecision?
        public var outputs: [Output] = []
        /// Packets handed on to later stages.
        public var handoffs = 0
        public var events: [Event] = []
        /// remote_ip=map lookups, in order.
        public var mapCache: [MapCacheOutcome] = []
    }

    public var stages: [Stage] = []
    public var stagesLeftOut = 0
    /// The frame was longer than a UMEM frame holds and was cut.
    public var truncatedInput = false

    public init() {}
}

extension Datapath {
    /// Traces `frame` as received on `port` of `bridge` (see Worker+Trace.swift): sends nothing,
    /// changes no counter or learning table of the switch. `tunnel` (tun_id, tun_src, tun_dst)
    /// starts it with that metadata.
    public func trace(bridge: String, inPort port: String, frame: [UInt8],
                      tunnel: (id: UInt64, source: UInt32, destination: UInt32)?) throws(DatapathError) -> DatapathTrace {
        try withTraceSource(bridge: bridge, port: port) { (live, slot, names) throws(DatapathError) -> DatapathTrace in
            let worker = try live.makeTraceWorker()
            defer { worker.destroyTraceCopies() }
            // The live worker may write its next-hop table (remote_ip=flow): copy while it is parked.
            live.park()
            live.copyConfiguration(into: worker)
            live.unpark()
            return worker.runTrace(frame: frame, inPort: slot, tunnel: tunnel.map { ($0.id, $0.source, $0.destination) },
                                   names: names)
        }
    }
}
