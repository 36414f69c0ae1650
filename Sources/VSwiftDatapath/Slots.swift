import VSwiftClassifier

/// A port's place in the datapath's port arrays (every worker's `ports`, `counters`,
/// `tunnelPortStates`; a bridge's member list; the MAC learning table's answers): 0 ..<
/// `DatapathLimits.maxPorts`, chosen by the datapath, never seen by users. Not an OpenFlow port
/// number (`OpenFlowPortNumber`, which users give and flows match): the two are different types
/// so the compiler catches one used for the other.
package struct PortSlot: Hashable, Sendable, Comparable, ExpressibleByIntegerLiteral {
    package var rawValue: UInt16

    @inline(__always) package init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Where this port's entry is in an array of `maxPorts` entries.
    @inline(__always) package var index: Int { Int(rawValue) }

    /// In a compiled output action: the frame's input port (IN_PORT), resolved per packet. Never a
    /// real slot (`maxPorts` is far below it).
    @inline(__always) package static var inputPort: PortSlot { PortSlot(rawValue: .max) }

    package static func < (a: PortSlot, b: PortSlot) -> Bool { a.rawValue < b.rawValue }

    /// A slot written in the source (a test harness's fixed ports) is plainly a slot; a variable
    /// of another integer type still is not.
    package init(integerLiteral value: UInt16) { rawValue = value }
}

/// A bridge's place in the workers' bridge arrays: 0 ..< `DatapathLimits.maxBridges`, or
/// `.unbridged` for a port in no bridge (an underlay port). One `Int32`, as the worker's port
/// entry stores it.
package struct BridgeSlot: Hashable, Sendable, ExpressibleByIntegerLiteral {
    package var rawValue: Int32

    @inline(__always) package init(rawValue: Int32) { self.rawValue = rawValue }
    @inline(__always) package init(_ index: Int) { rawValue = Int32(index) }
    /// A literal slot (a test harness's bridge 0; -1 is `.unbridged`).
    package init(integerLiteral value: Int32) { rawValue = value }

    /// The bridge of a port in no bridge.
    @inline(__always) package static var unbridged: BridgeSlot { BridgeSlot(rawValue: -1) }

    /// The position in the bridge arrays, nil for `.unbridged`.
    @inline(__always) package var index: Int? { rawValue < 0 ? nil : Int(rawValue) }

    /// The position of a slot already known to be a bridge's (not `.unbridged`): no check.
    @inline(__always) package var knownIndex: Int { Int(truncatingIfNeeded: rawValue) }
}
