/// Seeded random frames for differential tests (the XDP flow key against FlowExtractor, the XDP
/// flow cache against the workers): every shape FlowExtractor distinguishes — Ethernet II and
/// 802.3, zero to three VLAN tags, ARP/RARP, IPv4 with options, fragments and odd lengths, IPv6 with
/// extension-header chains and fragments, TCP/UDP/SCTP/ICMP/ICMPv6 — then, for some, a few random
/// bytes overwritten and a random cut, so the malformed cases are as common as the valid ones.
public enum RandomFrames {
    /// A frame of at least `minimumLength` bytes (BPF_PROG_RUN refuses frames under 14).
    public static func next(_ rng: inout SplitMix64, minimumLength: Int = 14) -> [UInt8] {
        var f = wellFormed(&rng)
        switch rng.next() % 4 {
        case 0: // corrupt a few bytes
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                f[Int(rng.next() % UInt64(f.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
        case 1: // cut
            let cut = minimumLength + Int(rng.next() % UInt64(max(f.count - minimumLength, 1)))
            f = Array(f[..<min(cut, f.count)])
        default:
            break
        }
        while f.count < minimumLength { f.append(0) }
        return f
    }

    static func pick<T>(_ rng: inout SplitMix64, _ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
    static func u16(_ rng: inout SplitMix64) -> UInt16 { UInt16(truncatingIfNeeded: rng.next()) }
    static func u8(_ rng: inout SplitMix64) -> UInt8 { UInt8(truncatingIfNeeded: rng.next()) }
    static func v6(_ rng: inout SplitMix64) -> V6 { V6(high: rng.next(), low: rng.next()) }

    static func wellFormed(_ rng: inout SplitMix64) -> [UInt8] {
        var tags: [(UInt16, UInt16)] = []
        for _ in 0..<pick(&rng, [0, 0, 0, 1, 1, 2, 3]) { tags.append((pick(&rng, [0x8100, 0x88a8]), u16(&rng))) }
        let dst = rng.next() & 0xffff_ffff_ffff, src = rng.next() & 0xffff_ffff_ffff
        let (type, payload): (UInt16, [UInt8])
        switch rng.next() % 10 {
        case 0: (type, payload) = (pick(&rng, [0x0806, 0x8035]), arp(&rng))
        case 1: (type, payload) = (UInt16(rng.next() % 0x600), rng.bytes(Int(rng.next() % 60)))
        case 2: (type, payload) = (pick(&rng, [0x88cc, 0x8847, 0x0800, 0x86dd]), rng.bytes(Int(rng.next() % 80)))
        case 3, 4, 5: (type, payload) = (0x0800, ipv4(&rng))
        default: (type, payload) = (0x86dd, ipv6(&rng))
        }
        var frame = Build.ethernet(dst: dst, src: src, tags: tags, type: type, payload)
        if rng.next() % 4 == 0 { frame += rng.bytes(Int(rng.next() % 40)) } // Ethernet padding / trailer
        return frame
    }

    static func arp(_ rng: inout SplitMix64) -> [UInt8] {
        let op: UInt16 = pick(&rng, [1, 2, 3, 0x1ff])
        var a = Ref.be16(1) + Ref.be16(0x0800) + [6, 4] + Ref.be16(op)
        a += Ref.mac(rng.next() & 0xffff_ffff_ffff) + Ref.be32(UInt32(truncatingIfNeeded: rng.next()))
        a += Ref.mac(rng.next() & 0xffff_ffff_ffff) + Ref.be32(UInt32(truncatingIfNeeded: rng.next()))
        if rng.next() % 5 == 0 { a[Int(rng.next() % 6)] ^= 1 } // a header the parser refuses
        return a
    }

    static func l4(_ rng: inout SplitMix64, proto: UInt8) -> [UInt8] {
        let payload = rng.bytes(Int(rng.next() % 24))
        switch proto {
        case 6: return Build.tcp(src: u16(&rng), dst: u16(&rng), flags: u16(&rng) & 0xfff, payload)
        case 17: return Build.udp(src: u16(&rng), dst: u16(&rng), payload)
        case 132: return Build.sctp(src: u16(&rng), dst: u16(&rng))
        case 1, 58: return [u8(&rng), u8(&rng), 0, 0] + payload + [0, 0, 0, 0]
        default: return payload
        }
    }

    static func ipv4(_ rng: inout SplitMix64) -> [UInt8] {
        let proto: UInt8 = pick(&rng, [6, 6, 17, 17, 1, 132, 58, 47])
        let frag: UInt16 = pick(&rng, [0, 0, 0, 0x4000, 0x2000, 0x2010, 0x0010, 0x8000])
        let options = rng.next() % 4 == 0 ? [UInt8](repeating: 1, count: 4 * Int(1 + rng.next() % 3)) : []
        let payload = l4(&rng, proto: proto)
        var totalLength: Int? = nil
        if rng.next() % 6 == 0 { totalLength = Int(rng.next() % 100) }
        return Build.ipv4(src: UInt32(truncatingIfNeeded: rng.next()), dst: UInt32(truncatingIfNeeded: rng.next()),
                          proto: proto, tos: u8(&rng), ttl: u8(&rng), frag: frag, options: options,
                          totalLength: totalLength, payload)
    }

    static func ipv6(_ rng: inout SplitMix64) -> [UInt8] {
        let proto: UInt8 = pick(&rng, [6, 17, 58, 132, 1, 59])
        var chain: [UInt8] = []
        var next = proto
        // Built back to front: each extension header names the one after it.
        for _ in 0..<pick(&rng, [0, 0, 1, 2, 3, 9]) {
            let kind: UInt8 = pick(&rng, [0, 43, 60, 51, 44])
            switch kind {
            case 44:
                chain = Build.fragment(next: next, offset: pick(&rng, [0, 0, 1, 100]), more: rng.next() % 2 == 0) + chain
            case 51:
                let units = Int(rng.next() % 3)
                var ah = [UInt8](repeating: 0, count: 4 * (units + 2))
                ah[0] = next
                ah[1] = UInt8(units)
                chain = ah + chain
            default:
                chain = Build.ext(next: next, units: Int(rng.next() % 3), routingSegmentsLeft: u8(&rng) % 2) + chain
            }
            next = kind
        }
        let body = chain + l4(&rng, proto: proto)
        var payloadLength: Int? = nil
        if rng.next() % 6 == 0 { payloadLength = Int(rng.next() % 120) }
        return Build.ipv6(src: v6(&rng), dst: v6(&rng), next: next, tc: u8(&rng), label: UInt32(truncatingIfNeeded: rng.next()),
                          hopLimit: u8(&rng), payloadLength: payloadLength, body)
    }
}
