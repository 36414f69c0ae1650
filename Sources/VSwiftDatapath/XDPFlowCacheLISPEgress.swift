import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// A LISP port as the XDP flow cache sees it (DESIGN.md, "XDP flow cache", *LISP encapsulation
/// from the datapath*): whether XDP can encapsulate for it exactly as `Worker.sendThroughTunnel`
/// does, and with which template. Pure: the datapath gives it the port's options, the tunnel
/// resolver's published next hops and the devices XDP can redirect to, and calls it again whenever
/// any of them changes (a new next hop, a port added or removed), so a template is never older
/// than what the workers use.
enum XDPFlowCacheLISPEgress {
    /// The port's cache view. Direct egress (a template, an output slot) only when all hold:
    /// - `remote_ip` is an address (`flow` and `map` choose the RLOC per packet: workers);
    /// - its next hop — the one the workers find for (remote, local_ip, dst_port) — is resolved;
    /// - the route leaves straight out of a device (not a bridge's internal port, where the outer
    ///   frame re-enters a bridge) that is in `redirectTargets` (a DEVMAP slot of the cache);
    /// - the device's MTU is known and fits the template (0 or > 65535: workers, which compare
    ///   with the whole value).
    /// The template slot is the port's slot (< `XDPFlowCache.lispTemplates`, as every port slot is).
    static func portInfo(slot: PortSlot, options: LISPPortOptions, nextHops: [TunnelNextHop],
                         redirectTargets: Set<PortSlot>) -> XDPCachePortInfo {
        var fixed = false
        if case .address = options.remote { fixed = true }
        let keyFromFlow = options.key == .flow
        func info(_ egress: (template: UInt32, headers: XDPFlowCache.LISPTemplate, egress: PortSlot)?) -> XDPCachePortInfo {
            XDPCachePortInfo(
                cache: CachePort(kind: .lisp(.init(fixedRemote: fixed, keyFromFlow: keyFromFlow, directEgress: egress != nil))),
                slot: slot, lisp: egress)
        }
        guard case .address(let remote) = options.remote, case .id(let instanceID) = options.key,
              Int(slot.rawValue) < XDPFlowCache.lispTemplates else { return info(nil) }
        let local = options.local ?? IPAddress()
        guard let hop = nextHops.first(where: { $0.remote == remote && $0.local == local && $0.udpPort == options.udpPort }),
              hop.status == .resolved, hop.egressBridge == .unbridged, redirectTargets.contains(hop.egressPort),
              hop.mtu > 0, hop.mtu <= UInt32(UInt16.max),
              hop.parameters.source.isIPv4 == remote.isIPv4, hop.parameters.destination == remote
        else { return info(nil) }
        let template = XDPFlowCache.LISPTemplate(
            ethernetDestination: hop.parameters.ethernetDestination, ethernetSource: hop.parameters.ethernetSource,
            sourceAddress: hop.parameters.source, destinationAddress: remote, instanceID: instanceID & 0xff_ffff,
            udpDestinationPort: hop.parameters.udpDestinationPort, fields: options.outerFields,
            egressMTU: UInt16(hop.mtu))
        return info((UInt32(slot.rawValue), template, hop.egressPort))
    }
}

/// What an installed entry adds to port counters per packet, beyond the input frame's length
/// (the only length the XDP counters keep), so the kernel path counts as the workers do.
struct XDPFlowCacheByteAccounting: Equatable, Sendable {
    /// Bytes the frame gained before its output (4 per VLAN tag pushed, −4 per tag popped): the
    /// output port's (or the LISP port's) tx bytes per packet.
    var outputDelta: Int = 0
    /// With LISP encapsulation: the LISP port (its tx and `encapsulated` counters) and the bytes
    /// the outer frame has beyond the input frame (outer headers 36 or 56, minus the L2 header's
    /// tags). Ethernet padding of a short inner frame, which encapsulation trims, is not known from
    /// the counters: those frames count up to 46 bytes more on the egress device than the workers'.
    var lisp: (port: PortSlot, egressDelta: Int)?

    static func == (a: Self, b: Self) -> Bool {
        a.outputDelta == b.outputDelta && a.lisp?.port == b.lisp?.port && a.lisp?.egressDelta == b.lisp?.egressDelta
    }

    /// For `flow`'s translation `actions`; `lispPort` the port of its LISP output, if any.
    init(flow: CachedFlow, actions: [XDPFlowCacheAction], lispPort: PortSlot?, lispIPv6: Bool) {
        var tags = 0
        if flow.maskedKey.get(.vlanTCI) & FlowConstants.vlanPresent != 0 { tags += 1 }
        if flow.maskedKey.get(.vlanOuterTCI) & FlowConstants.vlanPresent != 0 { tags += 1 }
        for action in actions {
            switch action {
            case .pushVLAN:
                outputDelta += 4
                tags += 1
            case .popVLAN where tags > 0:
                // (Popping an untagged frame changes nothing, in the workers as in XDP.)
                outputDelta -= 4
                tags -= 1
            case .lispEncapsulate:
                // Outer frame = 14 + outer IP + UDP + LISP + inner IP packet; the input frame was
                // 14 + 4 per tag + inner IP packet (+ what the actions before added).
                if let lispPort {
                    lisp = (lispPort, outputDelta - 4 * tags + (lispIPv6 ? LISP.overheadIPv6 : LISP.overheadIPv4) - 14)
                }
            default:
                break
            }
        }
    }

    init() {}
}
