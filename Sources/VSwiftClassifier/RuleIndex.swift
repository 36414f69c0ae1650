/// Which rule a lookup found: a position in the flow table's rule array, or `.miss`.
///
/// A classifier entry carries one (`ClassifierEntry.rule`) and every lookup returns one; the
/// datapath indexes its compiled rules with it. Its own type so that a rule index cannot be taken
/// for a port, a bridge or a counter slot, and so that a miss is spelled, not -1. One `Int32`
/// (the classifier's slots and the exact-match cache store `rawValue`; -1 is the miss), so arrays
/// of it cost what arrays of `Int32` did; `@frozen` and `@inlinable` keep it free across modules.
@frozen
public struct RuleIndex: Hashable, Sendable {
    /// The position, or -1 for `.miss`.
    public var rawValue: Int32

    @inlinable @inline(__always)
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The rule at `position` of the table's rule array (0 ..< Int32.max).
    @inlinable @inline(__always)
    public init(_ position: Int) { rawValue = Int32(position) }

    /// No rule matched.
    @inlinable @inline(__always)
    public static var miss: RuleIndex { RuleIndex(rawValue: -1) }

    @inlinable @inline(__always)
    public var isMiss: Bool { rawValue < 0 }

    /// The position in the rule array, or nil for a miss.
    @inlinable @inline(__always)
    public var position: Int? { rawValue < 0 ? nil : Int(rawValue) }
}

extension RuleIndex: CustomStringConvertible {
    public var description: String { isMiss ? "miss" : "rule \(rawValue)" }
}
