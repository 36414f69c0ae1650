import CSupport
import CXDP
import Glibc
import VSwiftPacket

/// Outer fragments of LISP (RFC 9300 §7: an ETR reassembles as any IP host would). An IPv4 UDP
/// fragment addressed to a local RLOC, arriving where the underlay is (the same trust boundary
/// as decapsulation), is copied into the worker's `IPv4Reassembler` and its frame recycled at
/// once; the datagram, once whole, is rebuilt in a fresh frame behind the last fragment's L2
/// header and goes through `receiveTunnelled` — the normal decapsulation, exactly once. A
/// reassembled datagram that turns out not to be LISP (other UDP to this host) continues as the
/// ordinary frame it now is. Failures are counted on the first LISP port (fragments other than
/// the first name no UDP port, so none can be attributed to a port before reassembly), by reason.
/// Worker thread only; off the common path (`receiveTunnelled` comes here only for fragments).
extension Worker {
    /// The reassembler's limits for UMEM frames of `frameSize` bytes: a reassembled datagram, with
    /// up to 22 bytes of Ethernet and VLAN tags, must fit one frame after `tapHeadroom`.
    static func reassemblyLimits(frameSize: UInt32) -> IPv4Reassembler.Limits {
        var limits = IPv4Reassembler.Limits()
        limits.datagramLength = max(68, Int(frameSize) - Int(DatapathLimits.tapHeadroom) - 22)
        return limits
    }

    /// Takes the outer IPv4 UDP fragment at `address` (IPv4 header at `l3`, checked) if it is for a
    /// local RLOC and arrived on the underlay: true, the frame is consumed. False: not ours, the
    /// caller handles it as before.
    @inline(never)
    func receiveOuterFragment(address: UInt64, length: UInt32, inPort: PortSlot, l3: Int) -> Bool {
        guard tunnelPortCount > 0 else { return false }
        let frame = base + Int(address)
        let destination = IPAddress(ipv4: UInt32(bigEndian: (frame + l3 + 16).loadUnaligned(as: UInt32.self)))
        let inBridge = ports[inPort.index].bridge
        guard arrivesOnUnderlay(destination, inPort: inPort, inBridge: inBridge) else { return false }
        let counters = tunnelCounters + tunnelPorts[0].index
        if now != reassemblyClock {
            reassemblyClock = now
            let expired = reassembler.expire(now: now)
            if expired > 0 { vs_add_relaxed_u64(&counters.pointee.pathMTU.timeouts, UInt64(expired)) }
        }
        let outcome = reassembler.add(frame + l3, length: Int(length) &- l3, now: now)
        switch outcome {
        case .complete:
            break
        case .held:
            pool.release(address)
            return true
        case .duplicate:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.duplicates, 1)
            pool.release(address)
            return true
        case .overlap:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.overlaps, 1)
            pool.release(address)
            return true
        case .tableFull:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.tableFull, 1)
            pool.release(address)
            return true
        case .tooBig:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.tooBig, 1)
            pool.release(address)
            return true
        case .tooManyFragments:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.tooManyFragments, 1)
            pool.release(address)
            return true
        case .malformed:
            vs_add_relaxed_u64(&counters.pointee.pathMTU.malformed, 1)
            pool.release(address)
            return true
        }
        let slot = reassembler.completed
        let datagram = reassembler.datagram(slot)
        let wholeLength = l3 &+ datagram.length
        guard wholeLength <= Int(frameSize) - Int(DatapathLimits.tapHeadroom), let fresh = pool.allocate() else {
            vs_add_relaxed_u64(&counters.pointee.pathMTU.tooBig, 1)
            reassembler.release(slot)
            pool.release(address)
            return true
        }
        let whole = fresh &+ DatapathLimits.tapHeadroom
        memcpy(base + Int(whole), frame, l3)
        memcpy(base + Int(whole) + l3, datagram.start, datagram.length)
        reassembler.release(slot)
        pool.release(address)
        vs_add_relaxed_u64(&counters.pointee.pathMTU.reassembled, 1)
        if receiveTunnelled(address: whole, length: UInt32(wholeLength), inPort: inPort) { return true }
        guard inBridge != .unbridged else {
            vs_add_relaxed_u64(&self.counters[inPort.index].rxDropped, 1)
            pool.release(whole)
            return true
        }
        process(address: whole, length: UInt32(wholeLength), inPort: inPort, bridge: inBridge, context: PacketContext())
        return true
    }
}
