/// The IP header fields a LISP tunnel carries between the inner and the outer header: TTL (hop
/// limit), DSCP and ECN.
///
/// Encapsulation (RFC 9300 §5.3, "Outer Header"): the outer TTL is copied from the inner one
/// (`ttl=inherit`) or fixed; the outer DSCP is copied from the inner one (`tos=inherit`) or fixed;
/// the outer ECN field is always the inner one (RFC 6040 §4.1, normal mode: copied, CE included;
/// OVS: "ECN fields are always inherited").
///
/// Decapsulation (RFC 9300 §5.3): the inner TTL becomes the outer one when the outer is lower, so
/// hops on the underlay count against the inner packet and a loop through tunnels ends; the inner
/// ECN field combines with the outer one by RFC 6040 §4.2 (Figure 4). The inner DSCP is kept.
extension LISP {
    /// How `encapsulate` fills the outer TTL and DSCP, as masks and values so the packet path
    /// needs no branch: outer = inner & mask | value.
    public struct OuterFields: Sendable, Equatable {
        /// 0xff with `ttl` inherited, else 0.
        public let ttlMask: UInt8
        /// The fixed TTL; 0 when inherited.
        public let ttlValue: UInt8
        /// 0xff with `tos` inherited (DSCP and ECN from the inner header), else 0x03 (ECN only).
        public let tosMask: UInt8
        /// The fixed DSCP, in the TOS byte's upper six bits; 0 when inherited.
        public let tosValue: UInt8

        /// `ttl`: the outer TTL / hop limit, or nil to copy the inner one. `tos`: the outer DSCP
        /// (the upper six bits of a TOS byte; its ECN bits are ignored, ECN always comes from the
        /// inner header), or nil to copy the inner DSCP.
        public init(ttl: UInt8? = nil, tos: UInt8? = nil) {
            ttlMask = ttl == nil ? 0xff : 0
            ttlValue = ttl ?? 0
            tosMask = tos == nil ? 0xff : 0x03
            tosValue = (tos ?? 0) & 0xfc
        }

        /// The fixed outer TTL, or nil when inherited.
        public var ttl: UInt8? { ttlMask == 0 ? ttlValue : nil }
        /// The fixed outer DSCP bits (in a TOS byte), or nil when inherited.
        public var tos: UInt8? { tosMask == 0xff ? nil : tosValue }

        /// The outer TOS / traffic class byte and TTL for an inner header with these.
        @inlinable @inline(__always)
        public func outer(innerTOS: UInt8, innerTTL: UInt8) -> (tos: UInt8, ttl: UInt8) {
            (innerTOS & tosMask | tosValue, innerTTL & ttlMask | ttlValue)
        }
    }

    /// What became of the inner packet's TTL and ECN on decapsulation.
    public enum DecapsulationResult: UInt8, Sendable {
        /// Decapsulated (the frame now starts at the pushed Ethernet header).
        case done
        /// Outer CE over an inner Not-ECT packet: RFC 6040 §4.2 says drop it (its transport would
        /// not understand the mark). The frame is unchanged.
        case congestionOnNotECT
        /// The inner TTL / hop limit, lowered to the outer one (RFC 9300 §5.3), is 0: the packet
        /// must not be forwarded. The frame is unchanged.
        case ttlExpired
    }

    /// RFC 6040 §4.2, Figure 4: the ECN field leaving the decapsulator, by arriving inner (row) and
    /// outer (column) ECN field. Codepoints: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE; 4 means drop.
    /// Nibble `inner << 2 | outer` of this word:
    ///
    ///     inner \ outer   Not-ECT  ECT(1)  ECT(0)  CE
    ///     Not-ECT (0)     0        0       0       drop
    ///     ECT(1)  (1)     1        1       1       3
    ///     ECT(0)  (2)     2        1       2       3
    ///     CE      (3)     3        3       3       3
    @inlinable public static var ecnDecapsulationTable: UInt64 { 0x3333_3212_3111_4000 }

    /// The inner ECN field after decapsulation (0...3), or 4: drop (RFC 6040 §4.2).
    @inlinable @inline(__always)
    public static func decapsulatedECN(inner: UInt8, outer: UInt8) -> UInt8 {
        let index = UInt64((inner & 3) << 2 | (outer & 3))
        return UInt8(truncatingIfNeeded: ecnDecapsulationTable >> (index << 2)) & 0xf
    }

    /// Applies the outer TTL and ECN to the inner IPv4 or IPv6 header at `p` (whose version and
    /// length `parseOuter` checked: at least 20 / 40 bytes are there). IPv4's header checksum is
    /// updated incrementally (RFC 1624), so a wrong one stays wrong; IPv6 has none. Writes nothing
    /// unless a field changes, and nothing when the packet is to be dropped.
    @inlinable @inline(__always)
    static func applyOuterFields(_ p: UnsafeMutableRawPointer, outerTOS: UInt8, outerTTL: UInt8) -> DecapsulationResult {
        let word0 = Wire.u16(p, 0)
        if word0 >> 12 == 4 {
            let tos = UInt8(truncatingIfNeeded: word0)
            let ttl = Wire.u8(p, 8)
            let ecn = decapsulatedECN(inner: tos, outer: outerTOS)
            guard ecn < 4 else { return .congestionOnNotECT }
            let newTTL = min(ttl, outerTTL)
            guard newTTL != 0 else { return .ttlExpired }
            let newTOS = tos & 0xfc | ecn
            if newTOS != tos || newTTL != ttl {
                let ttlWord = Wire.u16(p, 8)
                let newWord0 = word0 & 0xff00 | UInt16(newTOS)
                let newTTLWord = UInt16(newTTL) << 8 | ttlWord & 0x00ff
                var checksum = Checksum.update(checksum: Wire.u16(p, 10), old16: word0, new16: newWord0)
                checksum = Checksum.update(checksum: checksum, old16: ttlWord, new16: newTTLWord)
                Wire.put16(p, 0, newWord0)
                Wire.put16(p, 8, newTTLWord)
                Wire.put16(p, 10, checksum)
            }
            return .done
        }
        // IPv6: traffic class in bits 20..27 of the first word, hop limit at byte 7.
        let first = Wire.u32(p, 0)
        let trafficClass = UInt8(truncatingIfNeeded: first >> 20)
        let hopLimit = Wire.u8(p, 7)
        let ecn = decapsulatedECN(inner: trafficClass, outer: outerTOS)
        guard ecn < 4 else { return .congestionOnNotECT }
        let newHopLimit = min(hopLimit, outerTTL)
        guard newHopLimit != 0 else { return .ttlExpired }
        if ecn != trafficClass & 3 { Wire.put32(p, 0, first & ~0x0030_0000 | UInt32(ecn) << 20) }
        if newHopLimit != hopLimit { Wire.put8(p, 7, newHopLimit) }
        return .done
    }
}
