import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftPacket
import VSwiftProtocol

// The OpenFlow flow tables as the control plane keeps them: per bridge, the installed flows with
// their install time, counter slot and sequence number. Every change is published to the datapath
// as a whole new table (`setFlowTable`) before it is committed here, so a datapath failure leaves
// both sides as they were.
//
// Semantics follow Open vSwitch (ovs-ofctl(8), ofproto):
// - add: a flow with an identical match and priority is replaced, as a new flow (counters and
//   duration start again: OpenFlow 1.0's add, which ovs-ofctl speaks by default).
// - modify: replaces the actions of the selected flows, keeping counters, duration and timeouts
//   (the cookie as the request says, see `SwitchService.modifyFlows`); the hard timeout counts
//   again from the modification (OVS's `modified` time).
// - delete / modify selection: strict = identical match and priority; non-strict = every flow whose
//   match is at least as specific as the given one, whatever its priority. Either may also select
//   by cookie (`cookie=V/M`) and, for delete and dump, by output port (`out_port`).
// - replace: the table becomes exactly the given flows; flows already there with the same match,
//   priority, actions, cookie and timeouts are left alone (and keep their counters).
//
// This file: what a flow is to the table (`NewFlow`, `InstalledFlow`), one bridge's table, and the
// errors a table change can end in. All bridges' tables and their changes are `FlowTables`.

/// A flow to install, as a request or a saved configuration gives it: the rule with its identity
/// made compact (parsing a million flows keeps these, not a million 256-byte matches), and the
/// text to save it as, when it is known already.
struct NewFlow {
    let id: FlowIdentity
    let actions: [FlowAction]
    let cookie: UInt64
    let idleTimeout: UInt16
    let hardTimeout: UInt16
    /// The flow as it is saved (`InstalledFlow.text`); nil: formatted when saved.
    let text: String?

    init(_ rule: FlowRule, text: String? = nil, actions: [FlowAction]? = nil) {
        id = FlowIdentity(rule)
        self.actions = actions ?? rule.actions
        cookie = rule.cookie
        idleTimeout = rule.idleTimeout
        hardTimeout = rule.hardTimeout
        self.text = text
    }
}

/// Hands out one shared array for equal action lists seen close together: big tables repeat a
/// few lists (output:2, drop, NORMAL) over and over, and a million copies cost 50 MB and, when
/// compiled, a cold reference count each.
struct ActionListSharing {
    private var recent: [[FlowAction]] = []
    private var next = 0

    mutating func shared(_ actions: [FlowAction]) -> [FlowAction] {
        for list in recent where list == actions { return list }
        if recent.count < 4 {
            recent.append(actions)
        } else {
            recent[next] = actions
            next = (next + 1) % recent.count
        }
        return actions
    }
}

/// What the table keeps of a flow besides its identity.
struct InstalledFlow {
    var actions: [FlowAction]
    var cookie: UInt64
    var idleTimeout: UInt16
    var hardTimeout: UInt16
    /// Monotonic seconds of installation (duration counts from here).
    var created: Double
    /// Monotonic seconds of installation or last modification (the hard timeout counts from here).
    var modified: Double
    var counterSlot: Int
    var sequence: UInt64
    /// The flow in ovs-ofctl syntax as it is saved, kept once made: saving a big table after every
    /// change would otherwise spend most of its time formatting flows that did not change.
    var text: String?

    var hasTimeout: Bool { idleTimeout != 0 || hardTimeout != 0 }

    /// Same flow as `rule` says, apart from its identity: replace-flows leaves such a flow alone.
    func isSame(as rule: NewFlow) -> Bool {
        actions == rule.actions && cookie == rule.cookie && idleTimeout == rule.idleTimeout
            && hardTimeout == rule.hardTimeout
    }

    func rule(_ id: FlowIdentity) -> FlowRule {
        var rule = FlowRule(priority: id.priority, match: id.match, actions: actions)
        rule.cookie = cookie
        rule.idleTimeout = idleTimeout
        rule.hardTimeout = hardTimeout
        return rule
    }
}

extension InstalledFlow {
    /// `rule` installed at `now`, with no counter slot yet.
    init(_ rule: NewFlow, now: Double, sequence: UInt64) {
        self.init(
            actions: rule.actions, cookie: rule.cookie, idleTimeout: rule.idleTimeout, hardTimeout: rule.hardTimeout,
            created: now, modified: now, counterSlot: -1, sequence: sequence, text: rule.text)
    }
}

/// One bridge's flow table.
struct FlowTable {
    var flows: [FlowIdentity: InstalledFlow] = [:] {
        didSet { savedTexts = nil }
    }
    /// Flows with an idle or hard timeout, so expiry can skip tables without any.
    var timedCount = 0
    /// The flows' saved texts in dump order, when they were made (on another core) while the
    /// table was being published; any change of `flows` drops them.
    var savedTexts: [String]?
}

/// A flow of a table with its counters, as dump-flows reports it.
struct FlowSnapshot {
    let id: FlowIdentity
    let flow: InstalledFlow
    let statistics: RuleStatistics
}

/// Why a flow table refused a change, naming what is at fault. The control plane's dispatch layer
/// turns it into the JSON-RPC error the client sees (`RPCError.init(_: FlowTableError)`).
enum FlowTableError: Error, Equatable {
    /// The bridge has no flow table.
    case noSuchBridge(String)
    /// The change needs more counter slots than are free: the datapath has room for `capacity`
    /// flows in all (every bridge together), `available` of them free.
    case tooManyFlows(capacity: Int, available: Int)
    /// The datapath refused the table (nothing changed).
    case datapath(DatapathError)
}
