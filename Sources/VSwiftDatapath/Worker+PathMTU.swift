import CSupport
import CXDP
import Glibc
import VSwiftPacket

/// Path MTU at a LISP ingress (RFC 9300 §7.1, the stateless approach; RFC 1191, RFC 8201): a frame
/// output to a LISP port whose encapsulated packet would be over the egress device's MTU is not
/// dropped silently. An inner IPv4 packet with DF clear is fragmented so that each piece fits
/// once encapsulated; one with DF set, or an inner IPv6 packet, is answered with ICMP
/// Fragmentation Needed / ICMPv6 Packet Too Big carrying the tunnel's effective MTU (egress MTU
/// minus the 36 or 56 bytes of outer IP, UDP and LISP), out of the port the packet came in on.
/// Answers are rate-limited per worker. Off the common path: `sendThroughTunnel` comes here only
/// when the frame may not fit.
extension Worker {
    /// ICMP answers per worker per second (Linux's icmp_ratelimit allows one per second per
    /// destination with a burst; one bucket for all keeps the state fixed).
    static let icmpAnswersPerSecond: UInt32 = 100
    /// At most this many pieces per fragmented inner packet (a 3.8 KB frame over an MTU of 576
    /// makes 8); more (a tiny MTU) is dropped as too big.
    static let maxInnerFragments = 16

    /// Outer IP + UDP + LISP bytes (the Ethernet header is not part of the MTU).
    @inline(__always)
    static func tunnelIPOverhead(outerIPv6: Bool) -> Int {
        (outerIPv6 ? LISP.overheadIPv6 : LISP.overheadIPv4) &- Ethernet.headerLength
    }

    /// The frame would not fit `mtu` once encapsulated: fragments, answers or drops it (counted)
    /// and returns true. False when it fits after all (its L2 header was longer than 14 bytes) or
    /// is not IP: the caller encapsulates (or counts non-IP) as usual.
    @inline(never)
    func handleTooBig(port: PortSlot, address: UInt64, length: UInt32, context: PacketContext, inPort: PortSlot,
                      mtu: Int, outerIPv6: Bool) -> Bool {
        let frame = base + Int(address)
        let (etherType, l3) = ICMPTooBig.networkHeader(frame, length: Int(length))
        let innerLength = Int(length) &- l3
        let innerMTU = mtu &- Self.tunnelIPOverhead(outerIPv6: outerIPv6)
        guard innerLength > innerMTU else { return false }
        let counters = tunnelCounters + port.index
        let ip = frame + l3
        if etherType == EtherType.ipv4 && innerLength >= 20 && ip.load(as: UInt8.self) >> 4 == 4 {
            let flags = UInt16(bigEndian: (ip + 6).loadUnaligned(as: UInt16.self))
            if flags & 0x4000 == 0 {
                fragmentInner(port: port, address: address, length: length, context: context, inPort: inPort,
                              l3: l3, innerMTU: innerMTU)
                return true
            }
        } else if !(etherType == EtherType.ipv6 && innerLength >= 40 && ip.load(as: UInt8.self) >> 4 == 6) {
            return false
        }
        vs_add_relaxed_u64(&counters.pointee.tooBig, 1)
        answerTooBig(port: port, address: address, length: Int(length), l3: l3, ipv6: etherType == EtherType.ipv6,
                     innerMTU: innerMTU, inPort: inPort)
        pool.release(address)
        return true
    }

    /// Sends ICMP Fragmentation Needed (IPv4) or Packet Too Big (IPv6) for the frame at `address`
    /// back out of `inPort`, if the RFCs allow an answer and the rate does. The frame stays the
    /// caller's.
    func answerTooBig(port: PortSlot, address: UInt64, length: Int, l3: Int, ipv6: Bool, innerMTU: Int, inPort: PortSlot) {
        let counters = tunnelCounters + port.index
        let frame = base + Int(address)
        let allowed = ipv6 ? ICMPTooBig.mayAnswerIPv6(frame + l3, length: length &- l3)
                           : ICMPTooBig.mayAnswerIPv4(frame + l3, length: length &- l3)
        guard allowed, innerMTU > 0 else { return }
        if now != icmpTokenSecond {
            icmpTokenSecond = now
            icmpTokens = Self.icmpAnswersPerSecond
        }
        guard icmpTokens > 0 else {
            vs_add_relaxed_u64(&counters.pointee.pathMTU.icmpRateLimited, 1)
            return
        }
        guard let fresh = pool.allocate() else {
            vs_add_relaxed_u64(&self.counters[inPort.index].txDropped, 1)
            return
        }
        icmpTokens &-= 1
        let answer = fresh &+ DatapathLimits.tapHeadroom
        let out = base + Int(answer)
        let answerLength: Int
        if ipv6 {
            answerLength = ICMPTooBig.writeIPv6(answering: frame, length: length, l3: l3, mtu: UInt32(innerMTU), into: out)
        } else {
            ipIdentification &+= 1
            answerLength = ICMPTooBig.writeIPv4(answering: frame, length: length, l3: l3,
                                                nextHopMTU: UInt16(clamping: innerMTU), identification: ipIdentification,
                                                into: out)
        }
        vs_add_relaxed_u64(&counters.pointee.pathMTU.icmpSent, 1)
        // Back the way the packet came: a LISP input port encapsulates it back to its remote.
        output(port: inPort, address: answer, length: UInt32(answerLength), context: PacketContext(), inPort: port)
    }

    /// Splits the inner IPv4 packet (DF clear) of the frame at `address` into fragments of at most
    /// `innerMTU` bytes (RFC 791 §3.2; an inner fragment is split again, its offset and MF kept)
    /// and sends each through the tunnel. Later pieces are built first, in fresh frames, while the
    /// original is intact; then the original, cut to the first piece, and the rest are sent.
    func fragmentInner(port: PortSlot, address: UInt64, length: UInt32, context: PacketContext, inPort: PortSlot,
                       l3: Int, innerMTU: Int) {
        let counters = tunnelCounters + port.index
        let frame = base + Int(address)
        let ip = frame + l3
        let headerLength = Int(ip.load(as: UInt8.self) & 0x0f) &<< 2
        let total = min(Int(UInt16(bigEndian: (ip + 2).loadUnaligned(as: UInt16.self))), Int(length) &- l3)
        let field = UInt16(bigEndian: (ip + 6).loadUnaligned(as: UInt16.self))
        let originalOffset = Int(field & 0x1fff) &<< 3
        let originalMore = field & 0x2000 != 0
        let payload = total &- headerLength
        let first = IPv4Fragmentation.payloadPerFragment(maxPacket: innerMTU, headerLength: headerLength)
        guard headerLength >= 20, payload > 0, first > 0, first < payload else {
            vs_add_relaxed_u64(&counters.pointee.tooBig, 1)
            pool.release(address)
            return
        }
        // Address and length of each later piece (on the stack: no allocation).
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * Self.maxInnerFragments) { pieces in
            var count = 0
            var offset = first
            var failed = false
            while offset < payload {
                guard count < Self.maxInnerFragments - 1, let fresh = pool.allocate() else {
                    failed = true
                    break
                }
                let piece = fresh &+ DatapathLimits.tapHeadroom
                let out = base + Int(piece)
                memcpy(out, frame, l3)
                let h = IPv4Fragmentation.laterFragmentHeader(ip, headerLength: headerLength, into: out + l3)
                let chunk = min(IPv4Fragmentation.payloadPerFragment(maxPacket: innerMTU, headerLength: h), payload &- offset)
                guard chunk > 0 else {
                    pool.release(piece)
                    failed = true
                    break
                }
                memcpy(out + (l3 &+ h), ip + (headerLength &+ offset), chunk)
                let last = offset &+ chunk == payload
                IPv4Fragmentation.finishHeader(out + l3, headerLength: h, payloadLength: chunk,
                                               offset: originalOffset &+ offset, moreFragments: !last || originalMore)
                pieces[2 &* count] = piece
                pieces[2 &* count &+ 1] = UInt64(l3 &+ h &+ chunk)
                count &+= 1
                offset &+= chunk
            }
            if failed {
                for i in 0..<count { pool.release(pieces[2 &* i]) }
                vs_add_relaxed_u64(&counters.pointee.tooBig, 1)
                pool.release(address)
                return
            }
            IPv4Fragmentation.finishHeader(ip, headerLength: headerLength,
                                           payloadLength: first, offset: originalOffset, moreFragments: true)
            vs_add_relaxed_u64(&counters.pointee.pathMTU.innerFragmented, 1)
            vs_add_relaxed_u64(&counters.pointee.pathMTU.innerFragments, UInt64(count &+ 1))
            sendThroughTunnel(port: port, address: address, length: UInt32(l3 &+ headerLength &+ first),
                              context: context, inPort: inPort)
            for i in 0..<count {
                sendThroughTunnel(port: port, address: pieces[2 &* i], length: UInt32(pieces[2 &* i &+ 1]),
                                  context: context, inPort: inPort)
            }
        }
    }
}
