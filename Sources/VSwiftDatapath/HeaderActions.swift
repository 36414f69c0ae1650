import VSwiftPacket

/// Executes one compiled header action on a frame in place (VSwiftPacket does the header work).
enum HeaderActions {
    /// False when the packet must be dropped (dec_ttl reached zero). `frame`/`length` move when a
    /// VLAN tag is pushed (into the headroom, the bytes the buffer holds before `frame`) or popped.
    @inline(__always)
    static func apply(_ action: CompiledAction, frame: inout UnsafeMutableRawPointer, length: inout Int,
                      headroom: Int) -> Bool {
        let a = action.a
        switch action.op {
        case .setDlSrc: _ = HeaderRewrite.setEthernetSource(frame, length: length, a)
        case .setDlDst: _ = HeaderRewrite.setEthernetDestination(frame, length: length, a)
        case .setNwSrc: _ = HeaderRewrite.setIPv4Source(frame, length: length, UInt32(truncatingIfNeeded: a))
        case .setNwDst: _ = HeaderRewrite.setIPv4Destination(frame, length: length, UInt32(truncatingIfNeeded: a))
        case .setNwTos: _ = HeaderRewrite.setNetworkTOS(frame, length: length, UInt8(truncatingIfNeeded: a))
        case .setNwEcn: _ = HeaderRewrite.setECN(frame, length: length, UInt8(truncatingIfNeeded: a))
        case .setNwTTL: _ = HeaderRewrite.setTTL(frame, length: length, UInt8(truncatingIfNeeded: a))
        case .setTpSrc: _ = HeaderRewrite.setTransportSource(frame, length: length, UInt16(truncatingIfNeeded: a))
        case .setTpDst: _ = HeaderRewrite.setTransportDestination(frame, length: length, UInt16(truncatingIfNeeded: a))
        case .setIPv6Src: _ = HeaderRewrite.setIPv6Source(frame, length: length, high: a, low: action.b)
        case .setIPv6Dst: _ = HeaderRewrite.setIPv6Destination(frame, length: length, high: a, low: action.b)
        case .setIPv6Label: _ = HeaderRewrite.setIPv6FlowLabel(frame, length: length, UInt32(truncatingIfNeeded: a))
        case .setArpOp: _ = HeaderRewrite.setARP(.operation, frame, length: length, a)
        case .setArpSpa: _ = HeaderRewrite.setARP(.senderProtocolAddress, frame, length: length, a)
        case .setArpTpa: _ = HeaderRewrite.setARP(.targetProtocolAddress, frame, length: length, a)
        case .setArpSha: _ = HeaderRewrite.setARP(.senderHardwareAddress, frame, length: length, a)
        case .setArpTha: _ = HeaderRewrite.setARP(.targetHardwareAddress, frame, length: length, a)
        case .setVlanVid:
            _ = HeaderRewrite.setVLANID(&frame, length: &length, headroom: headroom, UInt16(truncatingIfNeeded: a))
            // set_field on vlan_tci carries the PCP too (flag 0x100 in b).
            if action.b & 0x100 != 0 {
                _ = HeaderRewrite.setVLANPriority(&frame, length: &length, headroom: headroom, UInt8(truncatingIfNeeded: action.b & 7))
            }
        case .setVlanPcp:
            _ = HeaderRewrite.setVLANPriority(&frame, length: &length, headroom: headroom, UInt8(truncatingIfNeeded: a))
        case .stripVlan: _ = HeaderRewrite.popVLAN(&frame, length: &length)
        case .pushVlan:
            _ = HeaderRewrite.pushVLAN(&frame, length: &length, headroom: headroom, tpid: UInt16(truncatingIfNeeded: a), tci: 0)
        case .decTTL:
            return HeaderRewrite.decrementTTL(frame, length: length) != .drop
        case .setTunId, .setTunSrc, .setTunDst:
            // Tunnel metadata only matters to tunnel ports (LISP): the worker keeps it, not the frame.
            break
        case .output, .normal, .flood, .all:
            break
        }
        return true
    }
}
