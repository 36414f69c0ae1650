// The trace method (`vswiftctl trace`): its params, its report, and the report as text, in the
// spirit of `ovs-appctl ofproto/trace`.

/// Params of trace: a flow in ovs-ofctl match syntax whose fields make the frame (unspecified
/// fields take defaults, as ofproto/trace does: zero addresses, TTL 64), or a whole frame in hex,
/// of which `flow` then gives only `in_port` and the tunnel fields. `in_port` is required.
public struct TraceParams: Codable, Sendable, Equatable {
    public var bridge: String
    public var flow: String
    /// A whole Ethernet frame, in hex (spaces and colons allowed).
    public var frame: String?

    public init(bridge: String, flow: String, frame: String? = nil) {
        self.bridge = bridge
        self.flow = flow
        self.frame = frame
    }
}

/// What the datapath would do with one frame, stage by stage.
public struct TraceReport: Codable, Sendable, Equatable {
    /// A field a stage's actions changed: as the stage got the frame, and as it left.
    public struct Change: Codable, Sendable, Equatable {
        public var field: String
        public var before: String
        public var after: String

        public init(field: String, before: String, after: String) {
            self.field = field
            self.before = before
            self.after = after
        }
    }

    /// The flow a lookup found.
    public struct Rule: Codable, Sendable, Equatable {
        public var table: Int
        public var priority: Int
        /// In hex, as dump-flows prints it (`0x1f`).
        public var cookie: String
        public var match: String
        public var actions: String

        public init(table: Int = 0, priority: Int, cookie: String, match: String, actions: String) {
            self.table = table
            self.priority = priority
            self.cookie = cookie
            self.match = match
            self.actions = actions
        }
    }

    /// A LISP packet's outer headers and where it goes.
    public struct LISPHeaders: Codable, Sendable, Equatable {
        /// The LISP port that encapsulated (or decapsulated) it.
        public var port: String?
        public var source: String
        public var destination: String
        public var udpSourcePort: Int
        public var udpDestinationPort: Int
        /// nil when the I flag is clear.
        public var instanceID: Int?
        /// Outer Ethernet: the next hop's MAC and the egress device's.
        public var nextHopMAC: String
        public var sourceMAC: String
        /// The port it leaves by (an underlay device, or a bridge's internal port it re-enters by).
        public var egress: String?

        public init(port: String?, source: String, destination: String, udpSourcePort: Int, udpDestinationPort: Int,
                    instanceID: Int?, nextHopMAC: String, sourceMAC: String, egress: String?) {
            self.port = port
            self.source = source
            self.destination = destination
            self.udpSourcePort = udpSourcePort
            self.udpDestinationPort = udpDestinationPort
            self.instanceID = instanceID
            self.nextHopMAC = nextHopMAC
            self.sourceMAC = sourceMAC
            self.egress = egress
        }
    }

    public struct Output: Codable, Sendable, Equatable {
        public var port: String
        public var ofport: UInt32?
        /// The port's bridge; nil for an underlay device.
        public var bridge: String?
        public var bytes: Int
        /// Fields that differ from the frame the stage started with (for a LISP packet: its inner packet's).
        public var changes: [Change]
        /// Set when the frame is a LISP packet this stage encapsulated.
        public var lisp: LISPHeaders?
        /// The frame, in hex.
        public var frame: String

        public init(port: String, ofport: UInt32?, bridge: String?, bytes: Int, changes: [Change], lisp: LISPHeaders?,
                    frame: String) {
            self.port = port
            self.ofport = ofport
            self.bridge = bridge
            self.bytes = bytes
            self.changes = changes
            self.lisp = lisp
            self.frame = frame
        }
    }

    /// NORMAL's decision.
    public struct Normal: Codable, Sendable, Equatable {
        public var destination: String
        /// `learned` (sent to `port`), `flood` (unknown destination), or `group` (flooded).
        public var decision: String
        public var port: String?
        public var floodPorts: [String]

        public init(destination: String, decision: String, port: String?, floodPorts: [String]) {
            self.destination = destination
            self.decision = decision
            self.port = port
            self.floodPorts = floodPorts
        }
    }

    public struct Stage: Codable, Sendable, Equatable {
        /// `received`, `decapsulated` or `reentered` (after encapsulation, into the bridge whose
        /// internal port the route leaves by).
        public var entry: String
        public var lispPort: String?
        /// nil: the input port is in no bridge (an underlay device).
        public var bridge: String?
        public var inPort: String
        public var inPortNumber: UInt32?
        public var depth: Int
        /// The flow key extracted from the frame, in ovs-ofctl syntax.
        public var flow: String
        /// `hit`, `miss` (the frame is dropped, as OpenFlow does), `normal` (no flow table: the
        /// bridge is a learning switch), `decapsulated` (LISP for a local RLOC from the underlay:
        /// unwrapped before any lookup), `none` (no bridge: only LISP is taken, else dropped).
        public var lookup: String
        public var rule: Rule?
        public var normal: Normal?
        /// Decapsulated stages: the outer headers removed; re-entered stages: the packet's own.
        public var lisp: LISPHeaders?
        public var outputs: [Output]
        /// Packets this stage handed on to later stages (decapsulated or re-entering).
        public var handedOn: Int
        /// Counters the stage moved (drops, errors, LISP by reason): `port: counter +n`.
        public var events: [String]
        /// The stage's outcome in a few words.
        public var result: String

        public init(entry: String, lispPort: String?, bridge: String?, inPort: String, inPortNumber: UInt32?, depth: Int,
                    flow: String, lookup: String, rule: Rule?, normal: Normal?, lisp: LISPHeaders?, outputs: [Output],
                    handedOn: Int, events: [String], result: String) {
            self.entry = entry
            self.lispPort = lispPort
            self.bridge = bridge
            self.inPort = inPort
            self.inPortNumber = inPortNumber
            self.depth = depth
            self.flow = flow
            self.lookup = lookup
            self.rule = rule
            self.normal = normal
            self.lisp = lisp
            self.outputs = outputs
            self.handedOn = handedOn
            self.events = events
            self.result = result
        }
    }

    public var bridge: String
    public var stages: [Stage]
    /// Where the frame (and its copies) finally goes: `PORT (OFPORT)` per output, empty when dropped.
    public var outputs: [String]
    /// Why nothing was sent, when nothing was.
    public var dropReason: String?
    /// Stages not run (beyond the trace's limit).
    public var stagesLeftOut: Int

    public init(bridge: String, stages: [Stage], outputs: [String], dropReason: String?, stagesLeftOut: Int = 0) {
        self.bridge = bridge
        self.stages = stages
        self.outputs = outputs
        self.dropReason = dropReason
        self.stagesLeftOut = stagesLeftOut
    }
}

extension TraceReport {
    /// The report as `vswiftctl trace` prints it.
    public var text: String {
        var out = ""
        for (i, stage) in stages.enumerated() {
            if i > 0 { out += "\n" }
            out += stage.text
        }
        if stagesLeftOut > 0 { out += "\n(\(stagesLeftOut) further stages not traced)\n" }
        out += "\nFinal: "
        if outputs.isEmpty {
            out += "dropped" + (dropReason.map { " (\($0))" } ?? "") + "\n"
        } else {
            out += "output to " + outputs.joined(separator: ", ") + "\n"
        }
        return out
    }
}

extension TraceReport.Stage {
    var text: String {
        var out = ""
        let title = bridge.map { "bridge(\"\($0)\")" } ?? "no bridge (underlay device \(inPort))"
        out += title + "\n" + String(repeating: "-", count: title.count) + "\n"
        switch entry {
        case "decapsulated":
            out += "Decapsulated by \(lispPort ?? "?"): enters on \(inPort)"
        case "reentered":
            out += "Encapsulated by \(lispPort ?? "?"): re-enters on \(inPort) (depth \(depth))"
        default:
            out += "Received on \(inPort)"
        }
        out += inPortNumber.map { $0 == ofportLocal ? " (LOCAL)\n" : " (port \($0))\n" } ?? "\n"
        if let lisp { out += "  " + lisp.text(outer: entry == "decapsulated") + "\n" }
        out += "Flow: \(flow)\n"
        switch lookup {
        case "hit":
            if let rule {
                out += "Rule: table=\(rule.table), priority=\(rule.priority), cookie=\(rule.cookie)\n"
                out += "      \(rule.match.isEmpty ? "(any)" : rule.match)\n"
                out += "      actions=\(rule.actions)\n"
            }
        case "miss":
            out += "Rule: no flow matches (table miss): the frame is dropped\n"
        case "normal":
            out += "Rule: no flow table: NORMAL (learning switch)\n"
        case "decapsulated":
            out += "Rule: none: LISP for a local RLOC, arrived on the underlay, is decapsulated before any lookup\n"
        default:
            out += "Rule: not in a bridge: only LISP for a local RLOC is taken from here\n"
        }
        if let normal {
            switch normal.decision {
            case "learned":
                out += "NORMAL: \(normal.destination) learned on \(normal.port ?? "?"): sent there\n"
            case "group":
                out += "NORMAL: \(normal.destination) is a group address: flooded to \(list(normal.floodPorts))\n"
            default:
                out += "NORMAL: \(normal.destination) not learned: flooded to \(list(normal.floodPorts))\n"
            }
        }
        for output in outputs {
            let number = output.ofport.map { $0 == ofportLocal ? " (LOCAL)" : " (port \($0))" } ?? ""
            out += "Output: \(output.port)\(number), \(output.bytes) bytes\n"
            for change in output.changes {
                out += "  \(change.field): \(change.before) -> \(change.after)\n"
            }
            if let lisp = output.lisp { out += "  " + lisp.text(outer: false) + "\n" }
        }
        for event in events { out += "Counter: \(event)\n" }
        out += "Result: \(result)\n"
        return out
    }

    private func list(_ ports: [String]) -> String { ports.isEmpty ? "(no other port)" : ports.joined(separator: ", ") }
}

extension TraceReport.LISPHeaders {
    func text(outer decapsulated: Bool) -> String {
        var out = decapsulated ? "LISP removed: " : "LISP \(port.map { "by \($0)" } ?? "packet"): "
        out += "\(source) -> \(destination), UDP \(udpSourcePort) -> \(udpDestinationPort)"
        out += instanceID.map { ", instance id \($0)" } ?? ", no instance id"
        out += ", Ethernet \(sourceMAC) -> \(nextHopMAC)"
        if !decapsulated, let egress { out += " (next hop), leaves by \(egress)" }
        return out
    }
}
