import VSwiftClassifier
import VSwiftPacket
import VSwiftProtocol

/// Which flows a del-flows, mod-flows or dump-flows acts on.
public struct FlowSelector: Sendable {
    public var match: Match
    /// Strict: only the flow with exactly this match and `priority`. Non-strict: every flow whose
    /// match is at least as specific as `match` (all its constraints, same or narrower), any priority.
    public var strict: Bool
    public var priority: UInt16
    /// Only flows whose cookie equals `value` in the bits of `mask` (ovs-ofctl's `cookie=V/M`).
    public var cookie: (value: UInt64, mask: UInt64)?
    /// Only flows with an action that outputs to this OpenFlow port (ovs-ofctl's `out_port`): as OVS,
    /// an `output` to it, or NORMAL/FLOOD/ALL/LOCAL/IN_PORT when it is that reserved port number.
    public var outPort: UInt32?

    public init(match: Match = Match(), strict: Bool = false, priority: UInt16 = FlowRule.defaultPriority,
                cookie: (value: UInt64, mask: UInt64)? = nil, outPort: UInt32? = nil) {
        self.match = match
        self.strict = strict
        self.priority = priority
        self.cookie = cookie
        self.outPort = outPort
    }

    /// Every flow (non-strict, empty match).
    public static let all = FlowSelector()

    func selects(_ id: FlowIdentity, _ flow: InstalledFlow) -> Bool {
        guard selects(cookie: flow.cookie, actions: flow.actions) else { return false }
        if strict { return id.priority == priority && id.match == match }
        return Self.isAtLeastAsSpecific(id.match, as: match)
    }

    /// The conditions on what a flow does rather than what it matches: its cookie and out_port.
    func selects(cookie flowCookie: UInt64, actions: [FlowAction]) -> Bool {
        if let cookie, flowCookie & cookie.mask != cookie.value & cookie.mask { return false }
        if let outPort, !actions.contains(where: { $0.outputPort == outPort }) { return false }
        return true
    }

    /// Does `flow` constrain every bit `selector` constrains, to the same value?
    static func isAtLeastAsSpecific(_ flow: Match, as selector: Match) -> Bool {
        for i in 0..<FlowKey.wordCount {
            let mask = selector.mask[word: i]
            if mask & ~flow.mask[word: i] != 0 || flow.key[word: i] & mask != selector.key[word: i] { return false }
        }
        return true
    }
}
