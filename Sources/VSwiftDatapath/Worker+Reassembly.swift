import CSupport
import CXDP
import Glibc
import VSwiftPacket

/// Outer fragments of LISP (RFC 9300 §7: an ETR reassembles as any IP host would). An IPv4 UDP
/// fragment, or an IPv6 one (a Fragment header directly after the IPv6 header naming UDP, RFC 8200
/// §4.5), addressed to a local RLOC and arriving where the underlay is (the same trust boundary
/// as decapsulation), is copied into the worker's `FragmentReassembler` and its frame recycled at
/// once; the datagram, once whole, is rebuilt in a fresh frame behind the last fragment's L2
/// header and goes through `receiveTunnelled` — the normal decapsulation, exactly once. A
/// reassembled datagram that turns out not to be LISP (other UDP to this host) continues as the
/// ordinary frame it now is. An IPv6 atomic fragment is processed as unfragmented (RFC 6946); an
/// IPv6 UDP fragment behind other extension headers is dropped and counted `malformed`. Failures
/// are counted on the first LISP port (fragments other than the first name no UDP port, so none
/// can be attributed to a port before reassembly), by reason.
/// Worker thread only; off the common path (`receiveTunnelled` comes here only for fragments).
extension Worker {
    /// The reassembler's limits for UMEM frames of `frameSize` bytes: a reassembled datagram, with
    /// up to 22 bytes of Ethernet and VLAN tags, must fit one frame after `tapHeadroom`.
    static func reassemblyLimits(frameSize: UInt32) -> FragmentReassembler.Limits {
        var limits = FragmentReassembler.Limits()
        limits.datagramLength = max(68, Int(frameSize) - Int(DatapathLimits.tapHeadroom) - 22)
        return limits
    }

    /// Takes the frame at `address` if it is an outer IPv4 or IPv6 UDP fragment for a local RLOC
    /// that arrived on the underlay: true, the frame is consumed. False: not ours, the caller
    /// handles it as before.
    @inline(never)
    func receiveOuterFragment(address: UInt64, length: UInt32, inPort: PortSlot) -> Bool {
        let frame = base + Int(address)
        let l3 = FragmentReassembler.ipv4UDPFragmentOffset(frame, length: Int(length))
        if l3 > 0 { return receiveOuterFragment(address: address, length: length, inPort: inPort, l3: l3, ipv6: false) }
        let (kind, l3v6) = FragmentReassembler.ipv6UDPFragment(frame, length: Int(length))
        switch kind {
        case .none:
            return false
        case .fragment:
            return receiveOuterFragment(address: address, length: length, inPort: inPort, l3: l3v6, ipv6: true)
        case .atomic, .behindExtensionHeaders:
            guard tunnelPortCount > 0 else { return false }
            let inBridge = ports[inPort.index].bridge
            guard arrivesOnUnderlay(IPAddress(loadingFrom: frame + (l3v6 + 24)), inPort: inPort, inBridge: inBridge) else { return false }
            if kind == .behindExtensionHeaders {
                vs_add_relaxed_u64(&(tunnelCounters + tunnelPorts[0].index).pointee.pathMTU.malformed, 1)
                pool.release(address)
                return true
            }
            // RFC 6946 §4: an atomic fragment is the packet itself, 8 bytes later.
            FragmentReassembler.removeAtomicFragmentHeader(frame, l3: l3v6)
            receiveWhole(address: address &+ 8, length: length &- 8, inPort: inPort, inBridge: inBridge)
            return true
        }
    }

    /// Takes the outer UDP fragment at `address` (IPv4 or IPv6 header at `l3`, checked) if it is
    /// for a local RLOC and arrived on the underlay: true, the frame is consumed. False: not ours.
    func receiveOuterFragment(address: UInt64, length: UInt32, inPort: PortSlot, l3: Int, ipv6: Bool) -> Bool {
        guard tunnelPortCount > 0 else { return false }
        let frame = base + Int(address)
        let destination = ipv6 ? IPAddress(loadingFrom: frame + (l3 + 24))
            : IPAddress(ipv4: UInt32(bigEndian: (frame + l3 + 16).loadUnaligned(as: UInt32.self)))
        let inBridge = ports[inPort.index].bridge
        guard arrivesOnUnderlay(destination, inPort: inPort, inBridge: inBridge) else { return false }
        let counters = tunnelCounters + tunnelPorts[0].index
        if now != reassemblyClock {
            reassemblyClock = now
            let expired = reassembler.expire(now: now)
            if expired > 0 { vs_add_relaxed_u64(&counters.pointee.pathMTU.timeouts, UInt64(expired)) }
        }
        let outcome = ipv6 ? reassembler.addIPv6(frame + l3, length: Int(length) &- l3, now: now)
            : reassembler.addIPv4(frame + l3, length: Int(length) &- l3, now: now)
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
        receiveWhole(address: whole, length: UInt32(wholeLength), inPort: inPort, inBridge: inBridge)
        return true
    }

    /// A datagram made whole (reassembled, or an atomic fragment unwrapped): decapsulated if it is
    /// LISP, else the ordinary frame it now is (dropped on an underlay device in no bridge).
    func receiveWhole(address: UInt64, length: UInt32, inPort: PortSlot, inBridge: BridgeSlot) {
        if receiveTunnelled(address: address, length: length, inPort: inPort) { return }
        guard inBridge != .unbridged else {
            vs_add_relaxed_u64(&self.counters[inPort.index].rxDropped, 1)
            pool.release(address)
            return
        }
        process(address: address, length: length, inPort: inPort, bridge: inBridge, context: PacketContext())
    }
}
