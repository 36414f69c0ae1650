import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// A port of one bridge as the XDP flow cache sees it: what `XDPCacheability` asks (`cache`) and
/// what the XDP program needs to send there (the DEVMAP slot; for a LISP port, its template).
package struct XDPCachePortInfo: Sendable, Equatable {
    package var cache: CachePort
    /// The port's slot: its DEVMAP slot (device ports) and its XDP in_port id.
    package var slot: PortSlot
    /// A LISP port with a fixed IPv4 or IPv6 remote whose next hop is resolved on a device with a
    /// DEVMAP slot (XDPFlowCacheLISPEgress): the template slot, the outer headers, and the
    /// device's DEVMAP slot.
    package var lisp: (template: UInt32, headers: XDPFlowCache.LISPTemplate, egress: PortSlot)?

    package init(cache: CachePort, slot: PortSlot,
                lisp: (template: UInt32, headers: XDPFlowCache.LISPTemplate, egress: PortSlot)? = nil) {
        self.cache = cache
        self.slot = slot
        self.lisp = lisp
    }

    package static func == (a: XDPCachePortInfo, b: XDPCachePortInfo) -> Bool {
        a.cache == b.cache && a.slot == b.slot && a.lisp?.template == b.lisp?.template
            && a.lisp?.headers == b.lisp?.headers && a.lisp?.egress == b.lisp?.egress
    }
}

/// What the XDP maps hold for one `CachedFlow`: the key as the programs extract it (in_port is
/// the input port's XDP id, not its OpenFlow number: OpenFlow numbers repeat across bridges,
/// the programs of one datapath share one table) and the action list.
package struct XDPFlowCacheTranslation: Equatable, Sendable {
    package var mask: FlowKey
    package var maskedKey: FlowKey
    package var actions: [XDPFlowCacheAction]
    /// The LISP template the actions use (slot, headers): written before the entry.
    package var lispTemplate: (slot: UInt32, headers: XDPFlowCache.LISPTemplate)?

    package static func == (a: XDPFlowCacheTranslation, b: XDPFlowCacheTranslation) -> Bool {
        a.mask == b.mask && a.maskedKey == b.maskedKey && a.actions == b.actions
            && a.lispTemplate?.slot == b.lispTemplate?.slot && a.lispTemplate?.headers == b.lispTemplate?.headers
    }

    /// Frames XDP sees arrive on a device, or on a LISP port it decapsulates for (an underlay
    /// program looks the inner frame up with the LISP port's in_port id, bpf/vswift_decap.h).
    static func isInput(_ kind: CachePort.Kind) -> Bool {
        switch kind {
        case .device: return true
        case .lisp(let lisp): return lisp.decapInXDP
        default: return false
        }
    }

    /// The XDP in_port id of port `slot` (what its program puts in the key's in_port).
    package static func inPortID(_ slot: PortSlot) -> UInt32 { 0x8000_0000 | UInt32(slot.rawValue) }

    /// `flow`'s entry for the XDP maps, or nil when the XDP program cannot do exactly what the
    /// workers do for it (then it is not installed: the frames stay on the workers' path).
    /// `port` gives a port of the flow's bridge by OpenFlow number (nil: no such port).
    ///
    /// Follows `Worker.execute`: actions run in order; `output:N` to the input port sends
    /// nothing (OpenFlow: only IN_PORT reflects); the first real output ends the list (a
    /// cacheable flow has at most one); an output to a port that does not exist is compiled away.
    package static func translate(_ flow: CachedFlow, port: (UInt32) -> XDPCachePortInfo?) -> XDPFlowCacheTranslation? {
        // in_port is in every megaflow (FlowShape), whole: the entry is for one input port.
        guard flow.mask.get(.inPort) == FlowField.inPort.layout.valueMask,
              let input = port(flow.inPort), Self.isInput(input.cache.kind) else { return nil }
        var actions: [XDPFlowCacheAction] = []
        var template: (slot: UInt32, headers: XDPFlowCache.LISPTemplate)?
        var tunnelMetadataSet = false
        var ended = false
        loop: for action in flow.actions {
            switch action {
            case .output(let number) where number == flow.inPort:
                continue
            case .output, .local, .inPort:
                let target: XDPCachePortInfo
                switch action {
                case .output(let number):
                    guard let p = port(number) else { continue }
                    target = p
                case .local:
                    guard let p = port(OpenFlowPort.local) else { continue }
                    target = p
                default:
                    target = input
                }
                switch target.cache.kind {
                case .absent:
                    continue
                case .device:
                    // XDP_REDIRECT there would be dropped by the kernel (NETDEV_XDP_ACT_NDO_XMIT).
                    guard target.cache.redirectTarget else { return nil }
                    actions.append(.output(slot: UInt32(target.slot.rawValue)))
                case .lisp(let lisp):
                    // A fixed remote, a fixed instance id, a resolved next hop on a device, an
                    // IPv4 or IPv6 inner packet (the entry's dl_type is in its mask).
                    guard lisp.fixedRemote, !lisp.keyFromFlow, !tunnelMetadataSet, let encap = target.lisp else { return nil }
                    let dlType = flow.maskedKey.get(.dlType)
                    guard dlType == UInt64(EtherType.ipv4) || dlType == UInt64(EtherType.ipv6) else { return nil }
                    template = (encap.template, encap.headers)
                    actions.append(.lispEncapsulate(template: encap.template))
                    actions.append(.output(slot: UInt32(encap.egress.rawValue)))
                case .internal:
                    return nil
                }
                ended = true
                break loop
            case .normal, .flood, .all:
                return nil
            case .modDlSrc(let mac): actions.append(.setEthernetSource(mac))
            case .modDlDst(let mac): actions.append(.setEthernetDestination(mac))
            case .modNwSrc(let address): actions.append(.setIPv4Source(address))
            case .modNwDst(let address): actions.append(.setIPv4Destination(address))
            case .modNwTos(let tos): actions.append(.setNetworkTOS(tos & 0xfc))
            case .modNwEcn(let ecn): actions.append(.setECN(ecn & 3))
            case .modTpSrc(let p): actions.append(.setTransportSource(p))
            case .modTpDst(let p): actions.append(.setTransportDestination(p))
            case .stripVlan: actions.append(.popVLAN)
            case .pushVlan(let tpid): actions.append(.pushVLAN(tpid: tpid))
            case .decTTL: actions.append(.decrementTTL)
            case .modVlanVid, .modVlanPcp, .setIPv6Src, .setIPv6Dst:
                return nil
            case .setTunnel:
                tunnelMetadataSet = true
            case .setSharedField(let field, let value):
                switch field {
                case .ipDscp: actions.append(.setNetworkTOS(UInt8(truncatingIfNeeded: (value << 2) & 0xfc)))
                case .nwEcn: actions.append(.setECN(UInt8(truncatingIfNeeded: value & 3)))
                case .arpOp, .arpSpa, .arpTpa: return nil
                }
            case .setField(let field, let value):
                switch field {
                case .dlSrc: actions.append(.setEthernetSource(value))
                case .dlDst: actions.append(.setEthernetDestination(value))
                case .nwSrc: actions.append(.setIPv4Source(UInt32(truncatingIfNeeded: value)))
                case .nwDst: actions.append(.setIPv4Destination(UInt32(truncatingIfNeeded: value)))
                case .nwTos: actions.append(.setNetworkTOS(UInt8(truncatingIfNeeded: value & 0xfc)))
                case .nwTTL: actions.append(.setTTL(UInt8(truncatingIfNeeded: value)))
                case .tpSrc: actions.append(.setTransportSource(UInt16(truncatingIfNeeded: value)))
                case .tpDst: actions.append(.setTransportDestination(UInt16(truncatingIfNeeded: value)))
                case .tunId, .tunSrc, .tunDst: tunnelMetadataSet = true
                default: return nil
                }
            }
        }
        if !ended { actions = [.drop] }
        guard XDPFlowCacheEntryLayout.encode(actions) != nil else { return nil }
        var mask = flow.mask
        var maskedKey = flow.maskedKey
        // The programs' key has the port's XDP id in in_port (bits the mask keeps whole).
        maskedKey.set(.inPort, UInt64(inPortID(input.slot)))
        mask.set(.inPort, FlowField.inPort.layout.valueMask)
        return XDPFlowCacheTranslation(mask: mask, maskedKey: maskedKey, actions: actions, lispTemplate: template)
    }
}
