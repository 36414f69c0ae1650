import VSwiftClassifier
import VSwiftPacket

/// The frame a trace sends through the pipeline, built from a flow's fields as ofproto/trace does
/// from a flow: what the flow names is set, the rest takes defaults (zero addresses and ports, TTL
/// and hop limit 64), checksums are right, and the frame is padded to Ethernet's 60 bytes. Headers
/// are written byte by byte here, not with the datapath's rewrite code, so a trace of a rewrite
/// does not start from a frame that shares its bug.
enum TraceFrame {
    static func build(from match: Match) -> [UInt8] {
        func value(_ field: FlowField) -> UInt64 { match.value(field) & match.mask(field) }
        var frame: [UInt8] = []
        append48(&frame, value(.dlDst))
        append48(&frame, value(.dlSrc))
        let outer = value(.vlanOuterTCI)
        if outer & FlowConstants.vlanPresent != 0 {
            append16(&frame, 0x88a8)
            append16(&frame, UInt16(outer & ~FlowConstants.vlanPresent & 0xffff))
        }
        let tci = value(.vlanTCI)
        if tci & FlowConstants.vlanPresent != 0 {
            append16(&frame, 0x8100)
            append16(&frame, UInt16(tci & ~FlowConstants.vlanPresent & 0xffff))
        }
        let dlType = UInt16(value(.dlType))
        append16(&frame, dlType)
        let proto = UInt8(truncatingIfNeeded: value(.nwProto))
        switch dlType {
        case 0x0800:
            let src = UInt32(truncatingIfNeeded: value(.nwSrc)), dst = UInt32(truncatingIfNeeded: value(.nwDst))
            let frag = value(.nwFrag)
            let l4 = frag & FlowConstants.fragLater != 0 ? [] : transport(match, proto: proto, pseudo: pseudo4(src, dst, proto))
            let start = frame.count
            frame.append(0x45)
            frame.append(UInt8(truncatingIfNeeded: value(.nwTos)))
            append16(&frame, UInt16(20 + l4.count))
            append16(&frame, 0)
            // nw_frag: a first fragment has MF set; a later one an offset (of 8 bytes) too.
            var flags: UInt16 = frag & FlowConstants.fragAny != 0 ? 0x2000 : 0
            if frag & FlowConstants.fragLater != 0 { flags |= 1 }
            append16(&frame, flags)
            frame.append(match.isWildcarded(.nwTTL) ? 64 : UInt8(truncatingIfNeeded: value(.nwTTL)))
            frame.append(proto)
            append16(&frame, 0)
            append32(&frame, src)
            append32(&frame, dst)
            let sum = ~checksum(frame[start..<start + 20])
            frame[start + 10] = UInt8(sum >> 8)
            frame[start + 11] = UInt8(sum & 0xff)
            frame += l4
        case 0x86dd:
            let src = (value(.ipv6SrcHigh), value(.ipv6SrcLow)), dst = (value(.ipv6DstHigh), value(.ipv6DstLow))
            var pseudo: [UInt8] = []
            for word in [src.0, src.1, dst.0, dst.1] { append64(&pseudo, word) }
            let l4 = transport(match, proto: proto, pseudo: pseudo)
            let tos = UInt32(truncatingIfNeeded: value(.nwTos))
            append32(&frame, 6 << 28 | tos << 20 | UInt32(truncatingIfNeeded: value(.ipv6Label)) & 0xf_ffff)
            append16(&frame, UInt16(l4.count))
            frame.append(proto)
            frame.append(match.isWildcarded(.nwTTL) ? 64 : UInt8(truncatingIfNeeded: value(.nwTTL)))
            frame += pseudo
            frame += l4
        case 0x0806, 0x8035:
            append16(&frame, 1)
            append16(&frame, 0x0800)
            frame += [6, 4]
            append16(&frame, UInt16(truncatingIfNeeded: value(.nwProto)))
            append48(&frame, value(.arpSha))
            append32(&frame, UInt32(truncatingIfNeeded: value(.nwSrc)))
            append48(&frame, value(.arpTha))
            append32(&frame, UInt32(truncatingIfNeeded: value(.nwDst)))
        default:
            break
        }
        while frame.count < 60 { frame.append(0) }
        return frame
    }

    /// The transport header (with checksum) for `proto`; `pseudo` is the IP pseudo-header's
    /// addresses (the length and protocol are added here).
    private static func transport(_ match: Match, proto: UInt8, pseudo: [UInt8]) -> [UInt8] {
        let sourcePort = UInt16(truncatingIfNeeded: match.value(.tpSrc) & match.mask(.tpSrc))
        let destinationPort = UInt16(truncatingIfNeeded: match.value(.tpDst) & match.mask(.tpDst))
        var l4: [UInt8] = []
        var checksumAt: Int?
        var pseudoHeader = true
        switch proto {
        case 6:
            append16(&l4, sourcePort)
            append16(&l4, destinationPort)
            append32(&l4, 0)
            append32(&l4, 0)
            let flags = UInt16(truncatingIfNeeded: match.value(.tcpFlags) & match.mask(.tcpFlags)) & 0x0fff
            append16(&l4, 5 << 12 | flags)
            append16(&l4, 0xffff)
            append16(&l4, 0)
            append16(&l4, 0)
            checksumAt = 16
        case 17:
            append16(&l4, sourcePort)
            append16(&l4, destinationPort)
            append16(&l4, 8)
            append16(&l4, 0)
            checksumAt = 6
        case 1, 58:
            // ICMP type and code are tp_src and tp_dst; an echo's identifier and sequence are 0.
            l4 += [UInt8(truncatingIfNeeded: sourcePort), UInt8(truncatingIfNeeded: destinationPort), 0, 0, 0, 0, 0, 0]
            checksumAt = 2
            pseudoHeader = proto == 58
        case 132:
            append16(&l4, sourcePort)
            append16(&l4, destinationPort)
            append32(&l4, 0)
            append32(&l4, 0)
        default:
            return []
        }
        if let at = checksumAt {
            var summed = pseudoHeader ? pseudo : []
            if pseudoHeader {
                append32(&summed, UInt32(l4.count))
                append32(&summed, UInt32(proto))
            }
            summed += l4
            var sum = ~checksum(summed[...])
            if proto == 17 && sum == 0 { sum = 0xffff }
            l4[at] = UInt8(sum >> 8)
            l4[at + 1] = UInt8(sum & 0xff)
        }
        return l4
    }

    private static func pseudo4(_ src: UInt32, _ dst: UInt32, _ proto: UInt8) -> [UInt8] {
        var p: [UInt8] = []
        append32(&p, src)
        append32(&p, dst)
        return p
    }

    /// RFC 1071's one's-complement sum (not complemented).
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return UInt16(sum)
    }

    private static func append16(_ a: inout [UInt8], _ v: UInt16) { a += [UInt8(v >> 8), UInt8(v & 0xff)] }
    private static func append32(_ a: inout [UInt8], _ v: UInt32) {
        append16(&a, UInt16(v >> 16))
        append16(&a, UInt16(v & 0xffff))
    }
    private static func append48(_ a: inout [UInt8], _ v: UInt64) {
        for shift in stride(from: 40, through: 0, by: -8) { a.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }
    private static func append64(_ a: inout [UInt8], _ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { a.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    /// Hex text (spaces, colons and a leading 0x ignored) as bytes; nil when it is not hex.
    static func bytes(hex text: String) -> [UInt8]? {
        var digits: [UInt8] = []
        var body = Substring(text)
        if body.hasPrefix("0x") || body.hasPrefix("0X") { body = body.dropFirst(2) }
        for c in body.utf8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digits.append(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digits.append(c - UInt8(ascii: "A") + 10)
            case UInt8(ascii: " "), UInt8(ascii: ":"), UInt8(ascii: "\n"), UInt8(ascii: "\t"): continue
            default: return nil
            }
        }
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
