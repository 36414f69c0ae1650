/// A LISP port's path-MTU and reassembly counters as `dump-ports` reports them (the datapath's
/// `PathMTUStatistics`, with the same names); present only once one of them is nonzero.
public struct PathMTUStatisticsReport: Codable, Sendable, Equatable {
    public var icmpSent: UInt64 = 0
    public var icmpRateLimited: UInt64 = 0
    public var innerFragmented: UInt64 = 0
    public var innerFragments: UInt64 = 0
    public var reassembled: UInt64 = 0
    public var reassemblyTimeouts: UInt64 = 0
    public var reassemblyOverlaps: UInt64 = 0
    public var fragmentDuplicates: UInt64 = 0
    public var reassemblyTableFull: UInt64 = 0
    public var reassemblyTooBig: UInt64 = 0
    public var reassemblyTooManyFragments: UInt64 = 0
    public var reassemblyMalformed: UInt64 = 0

    public init() {}

    /// Reassembly drops by reason, under the names of the `lisp_mtu` line (one list for it and the metrics).
    public static var reassemblyDropReasons: [(reason: String, counter: KeyPath<PathMTUStatisticsReport, UInt64>)] {
        [
            ("timeout", \.reassemblyTimeouts), ("overlap", \.reassemblyOverlaps), ("duplicate", \.fragmentDuplicates),
            ("table_full", \.reassemblyTableFull), ("too_big", \.reassemblyTooBig),
            ("too_many_fragments", \.reassemblyTooManyFragments), ("malformed", \.reassemblyMalformed),
        ]
    }
}

/// The `lisp_mtu` line of `dump-ports` (without indentation), e.g.
/// `lisp_mtu icmp_sent=3, icmp_rate_limited=0, inner_fragmented=1 (2 pieces), reassembled=4, drop timeout=0, ...`.
public func formatPathMTULine(_ p: PathMTUStatisticsReport) -> String {
    "lisp_mtu icmp_sent=\(p.icmpSent), icmp_rate_limited=\(p.icmpRateLimited), "
        + "inner_fragmented=\(p.innerFragmented) (\(p.innerFragments) pieces), reassembled=\(p.reassembled), "
        + "drop " + PathMTUStatisticsReport.reassemblyDropReasons.map { "\($0.reason)=\(p[keyPath: $0.counter])" }
        .joined(separator: ", ") + "\n"
}
