import VSwiftClassifier
import VSwiftPacket

/// A rule as the datapath runs it: the control plane decides which rules exist; the datapath
/// classifies packets against them and executes their actions.
public struct DatapathRule: Sendable {
    public var match: Match
    public var priority: UInt16
    /// Breaks priority ties deterministically: among equal priorities, the lower sequence wins.
    public var sequence: UInt64
    public var actions: [FlowAction]
    /// Stable slot of this rule's counters (0..<DatapathLimits.maxRules), kept by the control plane
    /// across table versions so a rule's counters survive other rules' changes.
    public var counterSlot: Int

    public init(match: Match, priority: UInt16, sequence: UInt64, actions: [FlowAction], counterSlot: Int) {
        self.match = match
        self.priority = priority
        self.sequence = sequence
        self.actions = actions
        self.counterSlot = counterSlot
    }
}

/// A rule's counters summed over workers.
public struct RuleStatistics: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    /// Monotonic second (`Datapath.monotonicSeconds`) of the last matching packet; 0 = never.
    public var lastUsed: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, lastUsed: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.lastUsed = lastUsed
    }
}
